"""Extrapolate a searched pattern to a target size by stacking or stretching (Composer's recipe).

Sizes are non-embedding parameter counts at the TARGET width: m for the searched pattern, M for the
target's reference model (the preset's Llama-style baseline, e.g. "(AM)x16" for 1B).

- stretch: run-length encode the pattern and multiply every run length by s = M / m, rounding each up.
  Suited to 16-layer searches: the order of the pattern's regions is kept at every scale.
- stack: repeat the whole pattern floor(M / m) times, then fill the remainder fraction r = M/m - floor(M/m)
  with one partial block made by stretching the pattern by r (each run rounded up), cut to its first
  ceil(r * len(pattern)) layers so that patterns of single-layer runs (AMAM...), which rounding up cannot
  shrink, still get a partial block of the right size. Suited to short searched blocks.

Worked example (tests check it): Composer's "2A+4M" = AAMMMM at 1B width has m = 222.3M and
M = 973.1M (Llama 3.2 1B without embeddings): s = 4.38, four stacks (24 layers, 8 A) plus AMM = 27 layers
with 9 attention layers, as Composer reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from aira.errors import UsageError
from aira.models.pattern import run_length, stack_pattern, stretch_pattern  # noqa: F401 - re-exported

STRATEGIES = ("stack", "stretch")


@dataclass
class Extrapolation:
    source: str
    pattern: str
    strategy: str
    target: str
    scale: float
    source_non_embedding: int
    target_non_embedding: int
    reference: str
    params: int
    non_embedding_params: int
    flops_per_token: float
    model: dict

    def to_dict(self) -> dict:
        from aira.models import compress_pattern, ratios

        return {
            "source_pattern": self.source, "pattern": self.pattern, "compressed": compress_pattern(list(self.pattern)),
            "layers": len(self.pattern), "ratios": ratios(list(self.pattern)), "strategy": self.strategy,
            "target": self.target, "scale": self.scale, "reference_pattern": self.reference,
            "source_non_embedding_params_at_target_width": self.source_non_embedding,
            "reference_non_embedding_params": self.target_non_embedding,
            "params": self.params, "non_embedding_params": self.non_embedding_params,
            "flops_per_token": self.flops_per_token, "model_config": self.model,
        }


def extrapolate(pattern: str, target: str, strategy: str) -> Extrapolation:
    """Extrapolate `pattern` to preset `target` (350M, 1B, 3B or any preset with a baseline)."""
    from dataclasses import asdict

    from aira.models import count_params, flops_per_token, get_preset, parse_pattern

    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    preset = get_preset(target)
    codes = "".join(parse_pattern(pattern))
    cfg = preset.model
    reference = "".join(parse_pattern(preset.baseline))
    m = count_params(codes, cfg, non_embedding=True)
    big_m = count_params(reference, cfg, non_embedding=True)
    if m <= 0:
        raise UsageError(f"pattern {pattern!r} has no parameters to scale")
    s = big_m / m
    out = stack_pattern(codes, s) if strategy == "stack" else stretch_pattern(codes, s)
    return Extrapolation(
        source=codes, pattern=out, strategy=strategy, target=preset.name, scale=s,
        source_non_embedding=m, target_non_embedding=big_m, reference=reference,
        params=count_params(out, cfg), non_embedding_params=count_params(out, cfg, non_embedding=True),
        flops_per_token=flops_per_token(out, cfg, cfg.max_seq_len), model=asdict(cfg),
    )
