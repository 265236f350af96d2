"""Named presets: one size dial from a CPU smoke test to Llama 3.2 3B.

A preset fixes the widths (ModelConfig) and training defaults, so a candidate is defined by its layer
pattern alone; the depth comes from the pattern. `baseline` is the Llama-style reference pattern at
that size (one A and one M layer per Llama block).

Widths: `1B` and `3B` are Llama 3.2's published configs; with their baselines "(AM)x16" and "(AM)x28"
they count exactly 1,235,814,400 and 3,212,749,824 parameters, as the released models.
`350M` is aira's choice, a Llama-3.2-shaped model at 1/2 the 1B width: d 1024, 16 heads (head_dim 64),
8 kv heads, ffn 4096 (4 D, like 1B's 8192 = 4 x 2048), same tied 128,256 vocabulary; its baseline
"(AM)x14" has 351.6M parameters (220.2M non-embedding).
`mad` uses MAD's width 128 and sequence length 128 (Poli et al. 2024) with its AdamW lr 5e-4; `small`
(d 768, 16 layers: ~50M non-embedding) is the GPU proxy; `tiny` runs in seconds on a CPU.
Vocabularies of tiny / mad / small are placeholders: the task passes its own (`build_model(vocab_size=)`).
Training fields are defaults for the trainer, which may override them; max_steps is a hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from aira.errors import UsageError
from aira.models.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class Preset:
    name: str
    model: ModelConfig
    lr: float
    batch_size: int  # sequences per optimizer step
    seq_len: int
    warmup_steps: int
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_steps: int | None = None
    time_budget_s: float | None = None  # a wall-clock hint for one evaluation at this fidelity
    baseline: str = "(AM)x8"
    description: str = ""
    max_layers: int = 128  # longer patterns are rejected (a typo such as (AM)x160 would not fit anyway)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


_LLAMA_VOCAB = 128_256


def _presets() -> dict[str, Preset]:
    ps = [
        Preset(
            name="tiny",
            model=ModelConfig(
                d_model=64,
                n_heads=4,
                n_kv_heads=2,
                ffn_dim=192,
                vocab_size=256,
                max_seq_len=64,
                window=16,
                ssm_state=16,
                ssm_head_dim=16,
                ssm_chunk=16,
            ),
            lr=3e-3,
            batch_size=16,
            seq_len=64,
            warmup_steps=10,
            max_steps=100,
            time_budget_s=30,
            baseline="(AM)x2",
            description="CPU smoke test, seconds per run",
        ),
        Preset(
            name="mad",
            model=ModelConfig(
                d_model=128,
                n_heads=4,
                n_kv_heads=4,
                ffn_dim=384,
                vocab_size=16,
                max_seq_len=128,
                window=32,
                ssm_state=32,
                ssm_head_dim=32,
                ssm_chunk=32,
            ),
            lr=5e-4,
            batch_size=128,
            seq_len=128,
            warmup_steps=50,
            weight_decay=0.0,
            max_steps=500,
            time_budget_s=300,
            baseline="(AM)x8",
            description="MAD proxy: width 128, 16 layers, CPU-able",
        ),
        Preset(
            name="small",
            model=ModelConfig(
                d_model=768,
                n_heads=12,
                n_kv_heads=4,
                ffn_dim=2048,
                vocab_size=8192,
                max_seq_len=1024,
                window=256,
            ),
            lr=1e-3,
            batch_size=64,
            seq_len=1024,
            warmup_steps=50,
            max_steps=500,
            time_budget_s=600,
            baseline="(AM)x8",
            description="GPU LM proxy, ~50M non-embedding params at 16 layers",
        ),
        Preset(
            name="350M",
            model=ModelConfig(
                d_model=1024,
                n_heads=16,
                n_kv_heads=8,
                ffn_dim=4096,
                vocab_size=_LLAMA_VOCAB,
                max_seq_len=2048,
                rope_theta=500_000.0,
                window=512,
            ),
            lr=6e-4,
            batch_size=256,
            seq_len=2048,
            warmup_steps=1000,
            baseline="(AM)x14",
            description="Llama-3.2-shaped 350M extrapolation target",
        ),
        Preset(
            name="1B",
            model=ModelConfig(
                d_model=2048,
                n_heads=32,
                n_kv_heads=8,
                ffn_dim=8192,
                vocab_size=_LLAMA_VOCAB,
                max_seq_len=2048,
                rope_theta=500_000.0,
                window=1024,
            ),
            lr=3e-4,
            batch_size=512,
            seq_len=2048,
            warmup_steps=2000,
            baseline="(AM)x16",
            description="Llama 3.2 1B widths",
        ),
        Preset(
            name="3B",
            model=ModelConfig(
                d_model=3072,
                n_heads=24,
                n_kv_heads=8,
                ffn_dim=8192,
                vocab_size=_LLAMA_VOCAB,
                max_seq_len=2048,
                rope_theta=500_000.0,
                window=1024,
            ),
            lr=3e-4,
            batch_size=512,
            seq_len=2048,
            warmup_steps=2000,
            baseline="(AM)x28",
            description="Llama 3.2 3B widths",
        ),
    ]
    return {p.name: p for p in ps}


PRESETS: dict[str, Preset] = _presets()


def get_preset(name: str) -> Preset:
    """Look a preset up by name (case-insensitive)."""
    if isinstance(name, str):
        for key, preset in PRESETS.items():
            if key.lower() == name.strip().lower():
                return preset
    raise UsageError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
