"""Contract checks for an agent's `Attention` module and its optional settings JSON.

Each check runs on random input and, on failure, gives one line saying what failed with expected vs
got, for the debug operator:
  construction, output type and shape, finite output, padding respected (changing the inputs at padded
  positions leaves the outputs at non-padded positions unchanged), parameter cap, forward FLOP cap
  (torch.utils.flop_counter at batch 1 and the task's max_len: it counts matmuls, convolutions and
  attention kernels; FFTs are added as 5 N log2 N per transform; elementwise work is not counted),
  forward + backward with finite gradients.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from aira.models.flops import extra_formulas
from aira.tasks.lra.model import ContractError
from aira.tasks.lra.presets import LraPreset, Settings

PAD_TOL = 1e-4


@dataclass
class ContractReport:
    params: int = 0
    flops: float = 0.0            # forward FLOPs of one module, batch 1, `flop_len` tokens
    flop_len: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def flops_per_token(self) -> float:
        return self.flops / max(1, self.flop_len)

    def raise_if_failed(self) -> None:
        if self.failures:
            raise ContractError("; ".join(self.failures))


def _fmt_shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _forward(module: nn.Module, x: torch.Tensor, mask: torch.Tensor, seed: int):
    torch.manual_seed(seed)  # stochastic mechanisms draw the same noise in paired calls
    return module(x, mask)


def check_attention(cls: type[nn.Module], *, d_model: int, n_heads: int, max_len: int,
                    attention_kwargs: dict | None = None, max_params: int | None = None,
                    max_flops_per_token: float | None = None, length: int | None = None,
                    batch: int = 2, seed: int = 0) -> ContractReport:
    """Run every check; `length` is the test length (default min(max_len, 64)), FLOPs use max_len."""
    rep = ContractReport(flop_len=max_len)
    kw = dict(attention_kwargs or {})
    extra = "".join(f", {k}={v!r}" for k, v in kw.items())
    sig = f"Attention(d_model={d_model}, n_heads={n_heads}, max_len={max_len}{extra})"
    torch.manual_seed(seed)
    try:
        module = cls(d_model=d_model, n_heads=n_heads, max_len=max_len, **kw)
    except Exception as e:
        rep.failures.append(f"construction failed: {sig} raised {type(e).__name__}: {e}")
        return rep
    if not isinstance(module, nn.Module):
        rep.failures.append(f"construction: expected an nn.Module from {sig}, got {type(module).__name__}")
        return rep
    rep.params = sum(p.numel() for p in module.parameters())
    if max_params is not None and rep.params > max_params:
        rep.failures.append(f"parameter cap: expected <= {max_params:,} parameters, got {rep.params:,}")

    L = min(max_len, length or 64)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, L, d_model, generator=gen)
    mask = torch.zeros(batch, L, dtype=torch.bool)
    mask[-1, L - max(1, L // 3):] = True  # the last row ends in padding; the first has none
    module.eval()
    with torch.no_grad():
        try:
            out = _forward(module, x, mask, seed)
        except Exception as e:
            rep.failures.append(f"forward raised {type(e).__name__}: {e} (input x {tuple(x.shape)}, "
                                f"key_padding_mask {tuple(mask.shape)} bool)")
            return rep
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            rep.failures.append(f"output shape: expected {tuple(x.shape)} (B, L, D), got {_fmt_shape(out)}")
            return rep
        bad = (~torch.isfinite(out)).sum().item()
        if bad:
            rep.failures.append(f"non-finite output: expected all finite, got {bad} NaN/inf of {out.numel()}")
            return rep
        x2 = x.clone()
        x2[mask] = 10.0 * torch.randn(int(mask.sum()), d_model, generator=gen)
        out2 = _forward(module, x2, mask, seed)
        keep = ~mask
        leak = (out2[keep] - out[keep]).abs().max().item() if keep.any() else 0.0
        scale = max(1.0, out[keep].abs().max().item())
        if not math.isfinite(leak) or leak > PAD_TOL * scale:
            rep.failures.append(f"padding leak: changing padded inputs changed non-padded outputs by up to "
                                f"{leak:.3g} (expected 0; mask positions where key_padding_mask is True)")
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=extra_formulas()) as counter:
            _forward(module, torch.randn(1, max_len, d_model, generator=gen),
                     torch.zeros(1, max_len, dtype=torch.bool), seed)
        rep.flops = float(counter.get_total_flops())
    except Exception as e:
        rep.failures.append(f"forward at max_len={max_len} raised {type(e).__name__}: {e}")
        return rep
    if max_flops_per_token is not None and rep.flops_per_token > max_flops_per_token:
        rep.failures.append(f"FLOP cap: expected <= {max_flops_per_token:.3g} forward FLOPs per token at "
                            f"length {max_len}, got {rep.flops_per_token:.3g}")

    module.train()
    xg = x.clone().requires_grad_(True)
    try:
        _forward(module, xg, mask, seed).float().square().mean().backward()
    except Exception as e:
        rep.failures.append(f"backward raised {type(e).__name__}: {e}")
        return rep
    if xg.grad is None or not torch.isfinite(xg.grad).all():
        rep.failures.append("backward: expected a finite gradient for the input x, got "
                            f"{'none' if xg.grad is None else 'NaN/inf'}")
    for name, p in module.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            rep.failures.append(f"backward: expected finite gradients, got NaN/inf in parameter {name!r}")
            break
    return rep


def validate_settings(settings: dict | str | None, preset: LraPreset) -> Settings:
    """Merge an agent's settings (dict or JSON text) over the preset's defaults, within its caps."""
    if settings is None or settings == "":
        return preset.defaults
    if isinstance(settings, str):
        try:
            settings = json.loads(settings)
        except json.JSONDecodeError as e:
            raise ContractError(f"settings: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(settings, dict):
        raise ContractError(f"settings: expected a JSON object, got {type(settings).__name__}")
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ContractError(f"settings: unknown key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(sorted(known))}")
    c = preset.caps
    limits = {"d_model": (int, 8, c.max_d_model), "n_layers": (int, 1, c.max_n_layers),
              "n_heads": (int, 1, c.max_n_heads), "batch_size": (int, 1, c.max_batch_size),
              "lr": (float, 1e-6, c.max_lr), "weight_decay": (float, 0.0, c.max_weight_decay),
              "dropout": (float, 0.0, c.max_dropout)}
    for key, value in settings.items():
        if key == "attention_kwargs":
            if not isinstance(value, dict) or not all(
                    isinstance(v, (int, float, str, bool)) or v is None for v in value.values()):
                raise ContractError("settings: attention_kwargs must be an object of JSON scalars")
            continue
        kind, lo, hi = limits[key]
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok_type = ok_type and float(value).is_integer()
        if not ok_type:
            raise ContractError(f"settings: {key} must be {'an integer' if kind is int else 'a number'}, "
                                f"got {value!r}")
        if not lo <= value <= hi:
            raise ContractError(f"settings: {key} must be in [{lo}, {hi}], got {value}")
    merged = {f.name: getattr(preset.defaults, f.name) for f in fields(Settings)}
    merged.update({k: (int(v) if limits.get(k, (None,))[0] is int else v) for k, v in settings.items()})
    if merged["d_model"] % merged["n_heads"]:
        raise ContractError(f"settings: d_model ({merged['d_model']}) must be divisible by n_heads "
                            f"({merged['n_heads']})")
    return Settings(**merged)
