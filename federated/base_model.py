"""The trainable model: a catalog GGUF dequantized into PyTorch, or a tiny random one of the same architecture.

Training starts from exactly the weights the glasses run (the catalog's quantized GGUF, dequantized), so a LoRA
adapter learned here applies to that file under llama.cpp without a shift in the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class BaseModel:
    model: object  # transformers PreTrainedModel
    tokenizer: object  # transformers PreTrainedTokenizer
    name: str  # catalog name, or "tiny-llama" for the random CI model
    architecture: str  # GGUF architecture: "llama", "qwen2"


def cpu_has_bf16() -> bool:
    """bf16 autocast only pays off with native bf16 dot products (AVX512-BF16 or AMX); elsewhere it is slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def special_tokens_from_gguf(gguf_path: Path, tok, model) -> None:
    """Take BOS/EOS and add-BOS from the GGUF itself: transformers' GGUF reader (4.57) sets SmolLM2's eos_token to
    <|im_start|> and add_bos_token to true, where the file says <|im_end|> and false."""
    import gguf

    fields = gguf.GGUFReader(gguf_path).fields

    def value(key: str):
        return fields[key].contents() if key in fields else None
    bos, eos, add_bos = (value("tokenizer.ggml.bos_token_id"), value("tokenizer.ggml.eos_token_id"),
                         value("tokenizer.ggml.add_bos_token"))
    if bos is not None:
        tok.bos_token = tok.convert_ids_to_tokens(int(bos))
        model.config.bos_token_id = model.generation_config.bos_token_id = int(bos)
    if eos is not None:
        tok.eos_token = tok.convert_ids_to_tokens(int(eos))
        model.config.eos_token_id = model.generation_config.eos_token_id = int(eos)
    if add_bos is not None and hasattr(tok, "add_bos_token"):
        tok.add_bos_token = bool(add_bos)


def gguf_architecture(gguf_path: Path) -> str:
    import gguf

    fields = gguf.GGUFReader(gguf_path).fields
    return str(fields["general.architecture"].contents())


def load_gguf(name: str, gguf_path: Path) -> BaseModel:
    """A catalog GGUF as a plain fp32 transformers model (trainable, state dict in HF names)."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf_path = Path(gguf_path)
    tok = gguf_tokenizer(gguf_path)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                  dtype=torch.float32)
    special_tokens_from_gguf(gguf_path, tok, loaded)
    loaded.config.use_cache = False
    return BaseModel(loaded, tok, name, gguf_architecture(gguf_path))


def gguf_tokenizer(gguf_path: Path):
    """The GGUF's tokenizer as a transformers tokenizer. Rebuilding it from the GGUF's vocabulary takes ~40 s on
    2 cores, so the result is kept beside the built models, keyed by the file's size and mtime."""
    from transformers import AutoTokenizer

    from device.paths import models_dir

    stat = gguf_path.stat()
    cache = models_dir() / "built" / "tokenizers" / f"{gguf_path.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (cache / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(cache))
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tmp = cache.with_name(cache.name + ".partial")
    tok.save_pretrained(str(tmp))
    if cache.exists():
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(cache)
    return tok


def load_catalog_model(name: str) -> BaseModel:
    from device.catalog import require_model

    spec = require_model(name)
    if spec.runtime != "llama":
        raise ValueError(f"{name} is an {spec.runtime} model; train from its GGUF (the catalog name without @…)")
    return load_gguf(spec.name, spec.path)


def tiny_model(tokenizer_from: Path, seed: int = 0) -> BaseModel:
    """A 2-layer random Llama with a real model's tokenizer and chat template (from its GGUF): the CI-speed model
    for the training and Flower pipelines, same code path as the real one."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = gguf_tokenizer(Path(tokenizer_from))
    special_ids = [t for t in (tok.bos_token_id, tok.eos_token_id) if t is not None]
    config = LlamaConfig(vocab_size=max(len(tok), *special_ids) + 1, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, use_cache=False)
    model = LlamaForCausalLM(config)
    special_tokens_from_gguf(Path(tokenizer_from), tok, model)
    return BaseModel(model, tok, "tiny-llama", "llama")
