"""LoRA on the base model (peft): the only weights that are trained, stored and (in federated runs) transmitted."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
ALL_LINEAR = ATTENTION + ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = ATTENTION
    top_layers: int = 0  # adapt only the last N decoder layers (0: all); backward then stops below them


    def to_json(self) -> dict:
        return asdict(self) | {"targets": list(self.targets)}


@dataclass
class LoraModel:
    model: object  # peft PeftModel
    spec: LoraSpec
    names: list[str] = field(default_factory=list)  # adapter tensor names, in a fixed order


def attach(model, spec: LoraSpec, seed: int = 0) -> LoraModel:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # lora_A's initialisation
    n_layers = model.config.num_hidden_layers
    layers = list(range(max(0, n_layers - spec.top_layers), n_layers)) if spec.top_layers else None
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                        target_modules=list(spec.targets), layers_to_transform=layers, bias="none",
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    names = sorted(n for n, p in peft_model.named_parameters() if p.requires_grad)
    return LoraModel(peft_model, spec, names)


def adapter_state(lm: LoraModel) -> OrderedDict:
    """name → tensor (detached, CPU, fp32) for every trained LoRA weight."""
    params = dict(lm.model.named_parameters())
    return OrderedDict((n, params[n].detach().float().cpu().clone()) for n in lm.names)


def adapter_arrays(lm: LoraModel) -> list:
    """The adapter as numpy arrays in a fixed order (what a federated client sends)."""
    return [t.numpy() for t in adapter_state(lm).values()]


def load_adapter_state(lm: LoraModel, state) -> None:
    """Set the LoRA weights from a name → tensor mapping or a list of arrays in `names` order."""
    import torch

    params = dict(lm.model.named_parameters())
    items = state.items() if hasattr(state, "items") else zip(lm.names, state, strict=True)
    with torch.no_grad():
        for name, value in items:
            if name not in params:
                raise KeyError(f"adapter weight {name} does not exist in this model")
            t = torch.as_tensor(value, dtype=params[name].dtype)
            if t.shape != params[name].shape:
                raise ValueError(f"adapter weight {name}: shape {tuple(t.shape)}, expected {tuple(params[name].shape)}")
            params[name].copy_(t)


def adapter_bytes(lm: LoraModel) -> int:
    return sum(t.numel() * 4 for t in adapter_state(lm).values())
