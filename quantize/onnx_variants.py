"""ONNX variants: catalog GGUF → PyTorch → ONNX decoder with KV cache (fp32) → int8 / int4 weights.

- fp32: transformers reads the GGUF (`gguf_file=`, dequantizing it), the weights are moved into a plain model
  built from the config (`save_pretrained` refuses a model loaded from GGUF), and optimum-onnx exports it for
  task text-generation-with-past. The tokenizer and chat template travel in the same folder.
- int8: `onnxruntime.quantization.quantize_dynamic` (int8 weights, activations quantized on the fly).
- int4: onnxruntime's MatMulNBits weight-only quantizer (4-bit blocks of 32, int8 compute where the CPU has it).
Each folder lands in `models/built/<model>@onnx-<precision>/` and is registered with its sha256.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from device.catalog import ModelSpec, get_model, models_dir, register_variant, require_model
from federated.base_model import special_tokens_from_gguf
from quantize.gguf_variants import QuantizeError, _registered_and_present, variant_spec

PRECISIONS = ("fp32", "int8", "int4")
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
              "config.json", "generation_config.json")


def parse_precisions(text: str) -> list[str]:
    wanted = [p.strip().lower() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PRECISIONS]
    if unknown:
        raise QuantizeError(f"unknown ONNX precision(s) {', '.join(unknown)}; known: {', '.join(PRECISIONS)}")
    return wanted


def gguf_to_pretrained(gguf_path: Path, out: Path) -> Path:
    """A transformers checkpoint (safetensors + tokenizer) holding the GGUF's weights, dequantized to fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                  dtype=torch.float32)
    plain = type(loaded)(loaded.config)
    result = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = loaded.config.tie_word_embeddings
    missing = [k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight"))]
    if missing or result.unexpected_keys:
        raise QuantizeError(f"the GGUF's weights do not fit {type(loaded).__name__}: missing {missing[:3]}, "
                            f"unexpected {result.unexpected_keys[:3]}")
    plain.tie_weights()
    special_tokens_from_gguf(gguf_path, tok, plain)
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def export_fp32(pretrained: Path, out: Path) -> Path:
    from optimum.exporters.onnx import main_export

    main_export(str(pretrained), output=str(out), task="text-generation-with-past", device="cpu",
                do_validation=False)
    if not (out / "model.onnx").is_file():
        raise QuantizeError(f"optimum wrote no model.onnx into {out}")
    return out


def untie_lm_head(model):
    """Give the output projection its own constant weight.

    A tied model exports `lm_head` as MatMul(x, Transpose(embed_tokens)); the quantizers only touch MatMuls whose
    weight is a constant, so the largest matrix of a small model would stay fp32. Folding the Transpose into a
    new initializer lets them quantize it (for SmolLM2-135M it is 21% of the weights and of the decode work)."""
    import onnx
    from onnx import numpy_helper

    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        src = producers.get(node.input[1])
        if src is None or src.op_type != "Transpose" or src.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in src.attribute if a.name == "perm"), None)
        weight = numpy_helper.to_array(inits[src.input[0]])
        folded = weight.transpose(perm) if perm else weight.T
        name = src.input[0] + ".lm_head_T"
        model.graph.initializer.append(numpy_helper.from_array(folded.copy(), name))
        node.input[1] = name
        if not any(src.output[0] in n.input for n in model.graph.node):
            model.graph.node.remove(src)
    onnx.checker.check_model(model)
    return model


def _load_untied(src: Path):
    import onnx

    return untie_lm_head(onnx.load(str(src / "model.onnx")))


def quantize_int8(src: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(_load_untied(src), str(out / "model.onnx"), weight_type=QuantType.QInt8, per_channel=False)
    _copy_side_files(src, out)
    return out


def quantize_int4(src: Path, out: Path, block_size: int = 32) -> Path:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    out.mkdir(parents=True, exist_ok=True)
    quantizer = MatMulNBitsQuantizer(_load_untied(src), bits=4, block_size=block_size, is_symmetric=True,
                                     accuracy_level=4, op_types_to_quantize=("MatMul", "Gather"))
    quantizer.process()
    quantizer.model.save_model_to_file(str(out / "model.onnx"), use_external_data_format=False)
    _copy_side_files(src, out)
    return out


def _copy_side_files(src: Path, out: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)


def build_onnx_variants(model: str, precisions: list[str], force: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> list[ModelSpec]:
    """Build `model@onnx-fp32` (always: the others are made from it) and the requested precisions."""
    base = require_model(model)
    if base.is_variant or base.runtime != "llama":
        raise QuantizeError(f"{model} is not a catalog GGUF; name the catalog model (e.g. {base.base})")
    made_by = f"glassmate quantize onnx --model {base.name} --precision {','.join(precisions)}"
    built_dir = models_dir() / "built"
    built_dir.mkdir(parents=True, exist_ok=True)
    steps = ["fp32", *[p for p in precisions if p != "fp32"]]
    fp32 = variant_spec(base, "onnx-fp32", "", "onnx", made_by)
    out: list[ModelSpec] = []
    for i, precision in enumerate(steps):
        spec = fp32 if precision == "fp32" else variant_spec(base, f"onnx-{precision}", "", "onnx", made_by)
        if progress:
            progress(f"ONNX {precision}", i, len(steps))
        if force or not _registered_and_present(spec.name):
            with tempfile.TemporaryDirectory(prefix="glassmate-onnx-", dir=built_dir) as tmp:
                staged = Path(tmp) / "model"
                if precision == "fp32":
                    export_fp32(gguf_to_pretrained(base.path, Path(tmp) / "pretrained"), staged)
                elif precision == "int8":
                    quantize_int8(fp32.path, staged)
                else:
                    quantize_int4(fp32.path, staged)
                if spec.path.exists():
                    shutil.rmtree(spec.path)
                staged.rename(spec.path)
            register_variant(spec)
        if precision in precisions:
            out.append(get_model(spec.name))
    return out
