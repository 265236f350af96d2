"""aira.models: primitives, the pattern-built hybrid LM, presets and analytic counts.

model = build_model("(AM)x8", "tiny", vocab_size=512)
logits, loss = model(idx, targets)
"""

from __future__ import annotations

import dataclasses

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.counts import count_params, flops_per_token
from aira.models.lm import HybridLM
from aira.models.pattern import compress_pattern, format_pattern, parse_pattern, ratios
from aira.models.presets import PRESETS, Preset, get_preset
from aira.models.registry import register


def resolve_config(
    preset: str | Preset | ModelConfig, *, vocab_size: int | None = None, **overrides
) -> ModelConfig:
    """The ModelConfig of a preset name / Preset / ModelConfig with vocab_size and field overrides applied."""
    if isinstance(preset, ModelConfig):
        cfg = preset
    elif isinstance(preset, Preset):
        cfg = preset.model
    else:
        cfg = get_preset(preset).model
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UsageError(f"unknown model setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
    if vocab_size is not None:
        overrides["vocab_size"] = vocab_size
    return cfg.with_(**overrides) if overrides else cfg


def build_model(
    pattern: str | list[str],
    preset: str | Preset | ModelConfig,
    *,
    vocab_size: int | None = None,
    **overrides,
) -> HybridLM:
    """Build a HybridLM from a pattern and a preset (name, Preset or ModelConfig), e.g. vocab_size=16."""
    return HybridLM(resolve_config(preset, vocab_size=vocab_size, **overrides), pattern)


__all__ = [
    "PRESETS",
    "HybridLM",
    "ModelConfig",
    "Preset",
    "build_model",
    "compress_pattern",
    "count_params",
    "flops_per_token",
    "format_pattern",
    "get_preset",
    "parse_pattern",
    "ratios",
    "register",
    "resolve_config",
]
