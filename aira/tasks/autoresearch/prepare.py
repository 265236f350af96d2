"""The frozen side of the autoresearch task that `train.py` imports: run settings, data, model hand-off.

Agents edit only `train.py`; this module (and `evaluate.py`) is outside their reach: the harness checks
both files' SHA-256 before and after every evaluation, and rejects proposals that name any other file.

    from aira.tasks.autoresearch.prepare import load_run, save_model, print_summary

    run = load_run()                       # preset, seed, time budget, device, vocabulary, eval length
    x, y = run.get_batch(batch, seq_len)   # random training windows (LongTensors on run.device)
    ...
    save_model(model, run)                 # the harness scores this model itself
    print_summary(val_bpb_hint=..., ...)   # the final grep-able `key: value` lines

What the harness fixes through the environment (the script cannot choose it):
- the seed: `load_run()` seeds Python, NumPy and torch with it, and the batch sampler draws from its
  own generator seeded with it, so the data order is the harness's, not the script's;
- the time budget (seconds of training, counted by the script after its first steps, as
  autoresearch does; the harness kills a run at twice the budget plus a start-up allowance);
- the data: only the training split is in the sandbox (`data/train-tokens/`); validation and the
  hidden held-out split never are.

The model hand-off: `save_model` exports the model with `torch.export` to `model.pt2` in the working
directory. The program takes token ids (B, T) with T = `run.eval_seq_len` (B free) and returns logits
(B, T, vocab_size). The harness loads the exported graph in its own process, so no agent Python runs
while it is scored.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ENV_PRESET = "AIRA_AR_PRESET"
ENV_SEED = "AIRA_AR_SEED"
ENV_BUDGET = "AIRA_AR_TIME_BUDGET"
ENV_EVAL_SEQ = "AIRA_AR_EVAL_SEQ_LEN"
ENV_DATA = "AIRA_AR_DATA"
ENV_DEVICE = "AIRA_AR_DEVICE"
MODEL_FILE = "model.pt2"
TRAIN_DIR = "train-tokens"  # inside the sandbox's read-only data folder: train.bin + meta.json


@dataclass
class Run:
    """Everything the harness decided for this evaluation."""

    preset: str
    seed: int
    time_budget_s: float
    eval_seq_len: int
    vocab_size: int
    device: torch.device
    tokens: np.ndarray = field(repr=False)
    generator: torch.Generator = field(repr=False)

    def get_batch(self, batch: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random training windows: x (batch, seq_len) and y = x shifted by one, on `device`."""
        if len(self.tokens) < seq_len + 1:
            raise ValueError(f"the training split has {len(self.tokens)} tokens, fewer than seq_len + 1")
        starts = torch.randint(0, len(self.tokens) - seq_len, (batch,), generator=self.generator).numpy()
        chunk = torch.from_numpy(self.tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int64))
        if self.device.type == "cuda":
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)
        return chunk[:, :-1], chunk[:, 1:]


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"{name} is not set: run this script through `aira design eval autoresearch`")
    return value


def load_run() -> Run:
    """Read the harness's settings, seed everything, open the training tokens."""
    seed = int(_env(ENV_SEED, "0"))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    data = Path(_env(ENV_DATA))
    meta = json.loads((data / "meta.json").read_text())
    tokens = np.memmap(data / "train.bin", dtype=meta["dtype"], mode="r")
    device = _env(ENV_DEVICE, "cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(seed)
    return Run(preset=_env(ENV_PRESET, "cpu"), seed=seed, time_budget_s=float(_env(ENV_BUDGET)),
               eval_seq_len=int(_env(ENV_EVAL_SEQ)), vocab_size=int(meta["vocab_size"]),
               device=torch.device(device), tokens=tokens, generator=gen)


def save_model(model: torch.nn.Module, run: Run, path: str | Path = MODEL_FILE) -> Path:
    """Export `model` (ids (B, eval_seq_len) -> logits (B, eval_seq_len, vocab)) for the harness."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile wrapper exports as its module
    model.eval()
    example = torch.zeros(2, run.eval_seq_len, dtype=torch.long, device=run.device)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    path = Path(path)
    torch.export.save(program, path)
    return path


def print_summary(**values: float | str) -> None:
    """The final `key: value` lines (autoresearch's format); floats with 6 significant digits."""
    print("---")
    for key, value in values.items():
        print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    sys.stdout.flush()
