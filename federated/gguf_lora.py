"""A peft LoRA adapter as a GGUF LoRA adapter that llama.cpp loads next to the quantized base model.

The layout is llama.cpp's own (convert_lora_to_gguf.py): general.type "adapter", adapter.type "lora",
adapter.lora.alpha, and per adapted matrix `<gguf tensor>.lora_a` (r × in) and `.lora_b` (out × r). llama.cpp's
Llama conversion permutes the rows of Q and K for its rotary layout; the rows of lora_b are the output rows, so
they get the same permutation (A is untouched).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.")


class AdapterExportError(Exception):
    pass


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf LlamaModel.permute (rows of a Q/K projection, HF → GGUF order)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(state: dict, config, architecture: str) -> dict[str, np.ndarray]:
    """peft state (name → tensor) → GGUF adapter tensor name → fp32 array."""
    out: dict[str, np.ndarray] = {}
    for name, value in state.items():
        m = _KEY.search(name)
        if not m:
            raise AdapterExportError(f"no GGUF name for adapter weight {name}")
        layer, module, ab = m.groups()
        arr = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        if architecture == "llama" and ab == "B" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            heads = config.num_attention_heads if module.endswith("q_proj") else config.num_key_value_heads
            arr = np.ascontiguousarray(llama_permute(arr, heads))
        out[f"blk.{layer}.{HF_TO_GGUF[module]}.weight.lora_{ab.lower()}"] = arr
    return out


def write_gguf_adapter(path: Path, state: dict, config, architecture: str, alpha: float,
                       metadata: dict[str, str] | None = None) -> Path:
    """Write the adapter; the file appears only when complete (written beside it, then renamed)."""
    import gguf

    tensors = gguf_tensors(state, config, architecture)
    if not tensors:
        raise AdapterExportError("the adapter has no weights")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    writer = gguf.GGUFWriter(str(tmp), architecture)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for key, value in (metadata or {}).items():
        writer.add_string(f"glassmate.{key}", str(value))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AdapterExportError(f"could not write {path}: {exc}") from exc
    return path
