"""The evaluation cache: a trained seed's result, kept across runs so nothing is trained twice.

One JSON file per (training settings, seed), named by a hash of:
- every `TrainConfig` field that can change the result (pattern, preset, task, budget, seeds, lr, ...),
- what the named presets resolve to (the model preset, the MAD settings), so a retuned preset is a miss,
- the device type (a CUDA run trains in bf16: its scores are not a CPU run's), torch's major.minor version,
- `EVALUATOR_VERSION`, bumped whenever a change to the trainer, the data or the scoring changes what a
  seed scores.
Fields that cannot change the result (threads, progress bar, malloc tuning) are left out, so a run with
other workers still hits. Search, noise floor, fidelity, halving and scaling all read and write it.

Where: `--cache DIR` on the commands, else `$AIRA_CACHE`, else `$XDG_CACHE_HOME/aira/evaluations`
(`~/.cache/aira/evaluations`); `--cache off` trains everything. `aira cache info|clear` manage it.
Writes are atomic (tmp file + rename), so workers sharing the folder never read half a file. An entry is a
`TrainResult`'s `to_dict()`; one that does not read back as one (written by hand, cut short) is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from aira.errors import UsageError
from aira.fileio import write_atomic
from aira.train.result import TrainResult

EVALUATOR_VERSION = 2  # 2: the device type and torch version joined the key (v1 was a run-local cache)

# TrainConfig fields that do not change what a seed scores
_RUNTIME_FIELDS = ("progress", "threads", "tune_malloc", "device")


def default_dir() -> Path:
    if os.environ.get("AIRA_CACHE"):
        return Path(os.environ["AIRA_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aira" / "evaluations"


def resolve_dir(arg: str | None) -> str | None:
    """A command's `--cache` value: None -> the default folder, "off" -> no cache, else that folder."""
    if arg is None:
        return str(default_dir())
    if arg.strip().lower() in ("off", "none", ""):
        return None
    p = Path(arg)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--cache {arg}: it is a file; give a folder (or 'off')")
    return str(p)


def resolved_settings(train: dict) -> dict:
    """What a training setup's named presets resolve to (model preset, MAD settings, tasks' own settings)."""
    from aira.data.mad import DATA_REVISIONS, MAD_PRESETS
    from aira.models import get_preset
    from aira.train.sources import parse_task, split_mad_name

    resolved = {"preset": repr(get_preset(train["preset"])),
                "mad": repr(MAD_PRESETS.get(train.get("mad_settings", ""), ""))}
    spec = parse_task(str(train.get("task", "mad")))
    own = sorted({o for o in (split_mad_name(n)[1] for n in spec.names) if o}) if spec.kind == "mad" else []
    if own:  # tasks with settings of their own (`selective_copying@copy16`)
        resolved["mad_own"] = {name: repr(MAD_PRESETS.get(name, "")) for name in own}
    if spec.kind == "mad":
        revised = {n: DATA_REVISIONS[n] for n in [train.get("mad_settings", ""), *own] if n in DATA_REVISIONS}
        if revised:  # absent otherwise, so the fingerprints of unrevised presets stay what they were
            resolved["data_revisions"] = revised
    return resolved


def cache_key(cfg, device_type: str, *, batched: bool = False) -> str:
    """The file name (without .json) of a TrainConfig's result on a device of this type; `batched`: trained
    with others as one (aira.train.batched), which agrees with the single path to float tolerance only."""
    import torch

    fields = {k: v for k, v in asdict(cfg).items() if k not in _RUNTIME_FIELDS}
    key = {"v": EVALUATOR_VERSION, "torch": ".".join(torch.__version__.split(".")[:2]),
           "device": device_type, "train": fields, "resolved": resolved_settings(fields)}
    if batched:
        key["path"] = "batched"
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class EvalCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> TrainResult | None:
        try:
            r = TrainResult.from_dict(json.loads(self._path(key).read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, or unreadable: train again and overwrite it
        return r if r.ok else None

    def put(self, key: str, result: TrainResult) -> None:
        if not result.ok:  # failures may be the machine's (OOM, timeouts): not kept
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(result.to_dict()))

    def files(self) -> list[Path]:
        return sorted(self.root.glob("??/*.json")) if self.root.is_dir() else []

    def clear(self) -> int:
        n = 0
        for f in self.files():
            f.unlink(missing_ok=True)
            n += 1
        for d in self.root.glob("??") if self.root.is_dir() else []:
            try:
                d.rmdir()
            except OSError:
                pass
        return n


def cached_train(cfg, cache_dir: str | Path | None, *, log=lambda *_: None) -> tuple[TrainResult, bool]:
    """(result, came from the cache) for a TrainConfig; trains and stores it on a miss."""
    return cached_train_many([cfg], cache_dir, log=log)[0]


def cached_train_many(cfgs: list, cache_dir: str | Path | None, *, batch: bool = False,
                      log=lambda *_: None) -> list[tuple[TrainResult, bool]]:
    """(result, came from the cache) for each TrainConfig. The misses train one after the other, or with
    `batch` as one (aira.train.batched) when they can; each is stored under the path that trained it."""
    from aira.train.batched import batchable, train_many
    from aira.train.trainer import pick_device, train

    cache = EvalCache(cache_dir) if cache_dir is not None else None
    together = batch and len(cfgs) > 0 and batchable(cfgs) is None
    device_type = pick_device(cfgs[0].device).type if cfgs else "cpu"
    keys = [cache_key(c, device_type, batched=together) for c in cfgs] if cache else [None] * len(cfgs)
    out: list[tuple[TrainResult, bool] | None] = [None] * len(cfgs)
    for i, k in enumerate(keys):
        if cache is not None and (hit := cache.get(k)) is not None:
            out[i] = (hit, True)
    todo = [i for i in range(len(cfgs)) if out[i] is None]
    if together and len(todo) > 1:
        results = train_many([cfgs[i] for i in todo], log=log)
    else:
        results = [train(cfgs[i], log=log) for i in todo]
    for i, r in zip(todo, results):
        out[i] = (r, False)
        if cache is not None:
            cache.put(keys[i], r)
    return out
