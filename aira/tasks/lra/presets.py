"""Training presets of the frozen LRA evaluator, and the caps on what an agent may configure.

- "gpu": LRA's base configurations (lra_benchmarks/*/configs/base_*_config.py in
  google-research/long-range-arena): width, depth, heads, MLP width, batch size, weight decay and step
  counts as LRA; sequence lengths and split sizes as LRA (see aira.data.lra). The optimiser is ours:
  AdamW with linear warm-up and cosine decay (LRA used Adam with a "constant * linear_warmup *
  rsqrt_decay" schedule at 0.05 for the text tasks), so learning rates are ours too.
- "cpu": d_model 64, 2 layers, short sequences, a few hundred steps: about a minute on one core.
- "smoke": tiny, for tests (seconds).

Caps (the Configurable setting): an agent may set d_model, n_layers, n_heads, lr, weight_decay, dropout,
batch_size and attention_kwargs within `SettingsCaps`; the attention module itself is capped in
parameters and forward FLOPs per token at the task's full length (see contract.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from aira.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What the Configurable setting lets an agent choose (defaults come from the preset)."""

    d_model: int
    n_layers: int
    n_heads: int
    lr: float
    weight_decay: float
    dropout: float
    batch_size: int
    attention_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SettingsCaps:
    max_d_model: int
    max_n_layers: int
    max_n_heads: int
    max_batch_size: int
    max_lr: float = 0.1
    max_weight_decay: float = 1.0
    max_dropout: float = 0.5


@dataclass(frozen=True, kw_only=True)
class LraPreset:
    name: str
    data_preset: str            # which aira.data.lra preset (lengths, sizes)
    defaults: Settings
    caps: SettingsCaps
    mlp_ratio: float            # MLP width = mlp_ratio * d_model (frozen, not agent-settable)
    steps: int
    warmup: int
    eval_batch_size: int = 256
    max_attention_params: int   # per Attention module
    max_attention_flops_per_token: float  # forward, batch 1, at the task's max_len
    grad_clip: float = 1.0


def _cpu(task: str) -> LraPreset:
    # Fewer steps where sequences are long (Text: 512 bytes; Retrieval: two documents per example), so
    # each task costs about a minute of one core (measured: docs/lra.md).
    steps = {"lra-retrieval": 200, "lra-text": 150}.get(task, 300)
    return LraPreset(
        name="cpu", data_preset="cpu",
        defaults=Settings(d_model=64, n_layers=2, n_heads=4, lr=2e-3, weight_decay=0.01, dropout=0.0,
                          batch_size=32),
        caps=SettingsCaps(max_d_model=128, max_n_layers=4, max_n_heads=8, max_batch_size=64),
        mlp_ratio=2.0, steps=steps, warmup=30, max_attention_params=250_000,
        max_attention_flops_per_token=4e6)


def _smoke(task: str) -> LraPreset:
    return LraPreset(
        name="smoke", data_preset="smoke",
        defaults=Settings(d_model=32, n_layers=1, n_heads=2, lr=3e-3, weight_decay=0.0, dropout=0.0,
                          batch_size=32),
        caps=SettingsCaps(max_d_model=64, max_n_layers=2, max_n_heads=4, max_batch_size=64),
        mlp_ratio=2.0, steps=60, warmup=6, max_attention_params=50_000,
        max_attention_flops_per_token=1e6)


# LRA base configs: (d_model, n_layers, n_heads, mlp_dim, batch, weight_decay, dropout, steps, warmup),
# then our learning rate.
_LRA = {
    "lra-listops": (512, 6, 8, 2048, 32, 0.1, 0.1, 5_000, 1_000, 1e-4),
    "lra-text": (256, 4, 4, 1024, 32, 0.1, 0.1, 20_000, 8_000, 1e-4),
    "lra-retrieval": (128, 4, 4, 512, 32, 0.1, 0.1, 5_000, 500, 2e-4),
    # Image and Pathfinder: 200 epochs of 45K / 160K images, warm-up one epoch (LRA's cosine configs).
    "lra-image": (32, 1, 1, 64, 256, 0.0, 0.3, 35_000, 175, 5e-4),
    "lra-pathfinder": (32, 1, 2, 32, 512, 0.0, 0.1, 62_500, 312, 1e-3),
}


def _gpu(task: str) -> LraPreset:
    d, n_layers, n_heads, mlp, batch, wd, dropout, steps, warmup, lr = _LRA[task]
    return LraPreset(
        name="gpu", data_preset="gpu",
        defaults=Settings(d_model=d, n_layers=n_layers, n_heads=n_heads, lr=lr, weight_decay=wd,
                          dropout=dropout, batch_size=batch),
        caps=SettingsCaps(max_d_model=max(512, d), max_n_layers=8, max_n_heads=16,
                          max_batch_size=max(64, batch)),
        mlp_ratio=mlp / d, steps=steps, warmup=warmup, max_attention_params=4_000_000,
        max_attention_flops_per_token=1e8)


_BUILDERS = {"smoke": _smoke, "cpu": _cpu, "gpu": _gpu}
PRESET_NAMES = tuple(_BUILDERS)


def get_preset(task: str, name: str = "cpu", **overrides) -> LraPreset:
    from aira.data.lra import TASKS

    if task not in TASKS:
        raise UsageError(f"unknown LRA task {task!r}; valid: {', '.join(TASKS)}")
    if name not in _BUILDERS:
        raise UsageError(f"unknown LRA preset {name!r}; valid: {', '.join(PRESET_NAMES)}")
    preset = _BUILDERS[name](task)
    return replace(preset, **overrides) if overrides else preset
