"""Training checkpoints: one `torch.save` file per saved step, written atomically, plus a `latest` pointer.

    <ckpt_dir>/step_00000040.pt    {"format", "step", "model", "optimizer", "rng", "pattern",
                                    "model_config", ...}: whatever the trainer puts in its state
    <ckpt_dir>/latest              the file name of the newest complete checkpoint

A file is written under a temporary name in the same folder, flushed to disk and renamed, so a job
killed mid-save leaves the previous checkpoint intact and never a half-written one under a real name;
`latest` is replaced the same way, after the file it names. Older checkpoints beyond `keep` are pruned.
`read_model_weights` gives the bare model state dict (and the pattern / model config, when stored) of a
checkpoint or of a plain `torch.save(model.state_dict())` file, for export and evaluation.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from aira.errors import UsageError
from aira.fileio import write_atomic

FORMAT_VERSION = 1
LATEST = "latest"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
# Prefixes that wrappers add to parameter names: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:08d}.pt"


def _atomic_write(path: Path, write) -> None:
    write_atomic(path, write, fsync=True)


def save_checkpoint(ckpt_dir: str | Path, state: dict, step: int, *, keep: int | None = 3) -> Path:
    """Write `state` (plus format and step) as step_<step>.pt atomically, point `latest` at it, prune.

    keep: how many of the newest checkpoints to leave on disk (None or 0: keep all).
    """
    folder = Path(ckpt_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(folder, step)
    payload = {**state, "format": FORMAT_VERSION, "step": step}
    _atomic_write(path, lambda f: torch.save(payload, f))
    _atomic_write(folder / LATEST, lambda f: f.write(path.name.encode() + b"\n"))
    if keep:
        for old in _step_files(folder)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def _step_files(folder: Path) -> list[Path]:
    """step_*.pt files in step order."""
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The checkpoint `latest` names, else the highest step file; None when the folder has none."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None
    pointer = folder / LATEST
    if pointer.is_file():
        named = folder / pointer.read_text().strip()
        if named.is_file():
            return named
    files = _step_files(folder)
    return files[-1] if files else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`; a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # a truncated or foreign file: say which, in one line
        raise UsageError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise UsageError(f"{path} is not an aira training checkpoint (no 'model' / 'step')")
    if state.get("format", 0) > FORMAT_VERSION:
        raise UsageError(f"checkpoint {path} has format {state['format']}, newer than this aira reads")
    return state


def unwrap_state_dict(state_dict: dict) -> dict:
    """Parameter names without DDP's `module.` / torch.compile's `_orig_mod.` prefixes."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def read_model_weights(path: str | Path) -> tuple[dict, dict]:
    """(model state dict, meta) from an aira checkpoint or a bare state-dict file.

    meta holds "pattern", "model_config", "step" and "data" (the token-data folder) when the checkpoint
    stored them (aira's pre-training loop does).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise UsageError(f"cannot read weights {path}: {type(e).__name__}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        meta = {k: obj[k] for k in ("pattern", "model_config", "step", "data") if k in obj}
        return unwrap_state_dict(obj["model"]), meta
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return unwrap_state_dict(obj), {}
    raise UsageError(f"{path} holds neither an aira checkpoint nor a model state dict")
