"""Compose proxies: what a candidate pattern is trained on and how it is scored, and their measured figures.

A `Proxy` is a partial TrainConfig, its `train` mapping (task, model preset, MAD settings, step or token budget,
lr, ...: any TrainConfig field of `proxy_train_keys`, checked against TrainConfig's own fields and types),
plus what a search needs around it: seeds per candidate, a timeout per seed, whether its jobs need a GPU.
A proxy file's keys are the same names, flat (`proxy_file_keys`).
Built-in proxies are in `PROXIES`; a user's is a JSON or TOML file (`load_proxy_file`). The figures a
proxy's fidelity was measured at ship in `aira/compose/fidelity_table.json` (a user proxy's beside its
file), each with a fingerprint of the resolved settings, so a retuned proxy has no figures until measured
again (`measured_entry`, `stale_entry`). `aira compose fidelity` (aira.compose.fidelity) writes them.

`mad` and `lm` name a family, not a proxy: `choose_proxy` picks, among the built-in proxies of that family
for this machine's device kind (CPU or GPU), the one with the best measured small-to-large transfer (the
table's `spearman`). An unmeasured proxy has no transfer figure; the family's default (`DEFAULT_PROXIES`)
counts as 0 when unmeasured (no evidence of agreement), and another proxy replaces it only with a measured
figure above the default's; a tie at the top keeps the default.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aira.errors import UsageError
from aira.userfiles import read_text

TABLE_PATH = Path(__file__).parents[1] / "compose" / "fidelity_table.json"


# TrainConfig fields that are not a proxy's to set: the candidate's own (pattern, seed), how a machine runs the
# training (progress, threads, tune_malloc, device, compile, eval_every) and a fidelity's model overrides
NOT_PROXY_SETTINGS = ("pattern", "seed", "progress", "threads", "tune_malloc", "device", "compile", "eval_every",
                      "overrides")
# in a proxy's trainer settings even at their TrainConfig defaults: the shipped fingerprints hash them
ALWAYS_SET = ("task", "preset", "budget", "mad_settings", "tokenizer", "vocab_size")


def proxy_train_keys() -> tuple[str, ...]:
    """The TrainConfig fields a proxy may set: task, preset and budget first (each proxy sets them), then the
    rest in TrainConfig's order. A new TrainConfig field is a proxy setting without another list to edit."""
    from dataclasses import fields

    from aira.train.trainer import TrainConfig

    rest = [f.name for f in fields(TrainConfig) if f.name not in NOT_PROXY_SETTINGS and f.name not in ALWAYS_SET[:3]]
    return (*ALWAYS_SET[:3], *rest)


def _train_defaults() -> dict:
    from dataclasses import MISSING, fields

    from aira.train.trainer import TrainConfig

    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


@dataclass(frozen=True, kw_only=True)
class Proxy:
    name: str
    train: dict[str, Any]      # the TrainConfig fields it sets (`proxy_train_keys`): task, preset, budget at least
    timeout_s: float = 900.0   # per seed
    seeds: int = 1             # seeds a search trains per candidate (their mean is the score)
    description: str = ""
    needs_gpu: bool = False    # its jobs ask the executor for a GPU (a CPU-sized proxy would waste one)
    source: str = ""           # the file a user-defined proxy was read from ("" for a built-in one)
    auto: bool = True          # `mad` / `lm` may choose it by its measured transfer (not a test-only proxy)

    def with_train(self, **changes: Any) -> Proxy:
        """The same proxy with some trainer settings changed (a retuned proxy: its fingerprint changes)."""
        return replace(self, train={**self.train, **changes})

    def setting(self, key: str) -> Any:
        """A TrainConfig field as this proxy trains: its own value, else TrainConfig's default."""
        return self.train[key] if key in self.train else _train_defaults()[key]

    @property
    def task(self) -> str:
        return self.train["task"]

    @property
    def preset(self) -> str:
        return self.train["preset"]

    @property
    def budget(self) -> str:
        return self.train["budget"]

    @property
    def family(self) -> str:
        """The kind of task it scores: "mad" or "lm" (what `--proxy mad` / `--proxy lm` choose among)."""
        from aira.train.sources import parse_task

        return parse_task(self.task).kind

    @property
    def lower_is_better(self) -> bool:
        """LM proxies score bits per byte; MAD proxies an accuracy."""
        return self.family == "lm"

    def train_kwargs(self) -> dict:
        """The trainer settings (a TrainConfig minus pattern and seed): ALWAYS_SET, and every other setting
        that differs from TrainConfig's default (a default is left out, so a fingerprint or a cache key does
        not change when a file spells one out)."""
        defaults = _train_defaults()
        kw = {k: self.setting(k) for k in ALWAYS_SET}
        kw.update({k: v for k, v in self.train.items() if k not in ALWAYS_SET and v != defaults[k]})
        return kw


# Step budgets, not seconds, so that a score does not depend on how loaded the machine is.
PROXIES = {
    # v3 (docs/fidelity.md); mad-cpu-ladder below was measured as its successor and not adopted
    "mad-cpu": Proxy(name="mad-cpu", train={"task": "mad:selective_copying,compression,memorization", "preset": "tiny",
                                            "mad_settings": "cpu32", "budget": "384steps", "lr": 3e-3},
                     timeout_s=300, seeds=2,
                     description="three MAD tasks (selective copying, compression, memorization of 4,096 keys), "
                                 "sequence length 32, width 64, 128 steps each"),
    # experimental (bench/results/fidelity-history.md, "v4"): no memorization, scored by the learning-curve area so the large
    # fidelity does not tie at the ceiling; small-to-large 0.43 vs v3's 0.33, but the all-MLP and
    # 1-attention patterns sit at chance, so it is not the default
    "mad-cpu-ladder": Proxy(name="mad-cpu-ladder",
                            train={"task": "mad:selective_copying@copy16,selective_copying,compression",
                                   "preset": "tiny", "mad_settings": "cpu32", "budget": "384steps", "lr": 3e-3,
                                   "curve_points": 6},
                            timeout_s=300, seeds=2,
                            description="experimental: selective copying at two difficulties (2 of 16, 4 of 32 "
                                        "tokens) and compression, width 64, 128 steps each, scored by the "
                                        "learning-curve area (6 points)"),
    "mad-gpu": Proxy(name="mad-gpu", needs_gpu=True,
                     train={"task": "mad", "preset": "mad", "mad_settings": "default", "budget": "3000steps"},
                     description="aira's causal, teacher-forced variants of the six MAD tasks at MAD's default "
                                 "sizes (vocabulary 16, length 128; not MAD-lab's rules, which are the "
                                 "`madlab` MAD settings), width 128, 500 steps each"),
    # 1,000 steps and 2 seeds: 2-seed candidates rank with rho 0.92 (500 steps: 0.89; docs/fidelity.md)
    "lm-cpu": Proxy(name="lm-cpu", train={"task": "lm:shakespeare", "preset": "tiny", "tokenizer": "bytes",
                                          "budget": "1000steps", "lr": 3e-3},
                    timeout_s=600, seeds=2,
                    description="byte-level LM on Shakespeare, width 64, 1,000 steps"),
    # For tests and smoke runs only: seconds per evaluation, rankings not meaningful.
    "smoke": Proxy(name="smoke", train={"task": "mad:in_context_recall", "preset": "tiny", "mad_settings": "tiny",
                                        "budget": "8steps", "lr": 3e-3},
                   timeout_s=120, auto=False,
                   description="smoke test: one MAD task, 8 steps (not a real proxy)"),
    "lm-gpu": Proxy(name="lm-gpu", needs_gpu=True, train={"task": "lm:shakespeare", "preset": "small",
                                                          "budget": "500steps"},
                    description="BPE-8192 LM on Shakespeare, width 768, 500 steps"),
}


# what a proxy file may set besides its trainer settings (aira compose run|fidelity --proxy FILE.json|FILE.toml)
PROXY_FILE_OWN_KEYS = ("timeout_s", "seeds", "description", "needs_gpu")
_OWN_TYPES = {"name": (str,), "timeout_s": (int, float), "seeds": (int,), "description": (str,), "needs_gpu": (bool,)}


def proxy_file_keys() -> tuple[str, ...]:
    """Every key of a proxy file: its name, the trainer settings (`proxy_train_keys`), then the proxy's own."""
    return ("name", *proxy_train_keys(), *PROXY_FILE_OWN_KEYS)


def _file_types() -> dict[str, tuple[type, ...]]:
    """The types a proxy file's values may have: a trainer setting's from TrainConfig's annotation (an int
    where a float goes; never None), the rest from _OWN_TYPES."""
    import types
    import typing

    from aira.train.trainer import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    out = dict(_OWN_TYPES)
    for k in proxy_train_keys():
        hint = hints[k]
        allowed = tuple(a for a in typing.get_args(hint) if a is not type(None)) \
            if isinstance(hint, types.UnionType) else (hint,)
        if float in allowed:
            allowed = (*allowed, int)
        out[k] = allowed
    out["budget"] = (str, int)  # a bare number is steps (aira.train.budget.parse_budget)
    return out


def is_proxy_file(name: str) -> bool:
    return name.endswith((".json", ".toml")) or os.sep in name


def load_proxy_file(path: str) -> Proxy:
    """A user-defined proxy: a JSON or TOML file with `task`, `preset` and `budget` (a step or token budget,
    so that scores do not depend on the machine's load) and any other key of `proxy_file_keys()`, e.g.
    {"task": "mad:selective_copying,compression", "preset": "tiny", "mad_settings": "cpu32", "budget":
    "512steps", "lr": 0.001, "seeds": 2}. Its name is `name` or the file's stem; its measured fidelity figures
    live beside it (`<stem>.fidelity.json`, written by `aira compose fidelity --proxy FILE --record`)."""
    p = Path(path)
    where = f"proxy file {path}"
    text = read_text(p, "proxy file")
    try:
        if p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{where}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a table of settings, got {type(data).__name__}")
    valid = proxy_file_keys()
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise UsageError(f"{where}: unknown setting {unknown[0]!r}; valid: {', '.join(valid)}")
    missing = [k for k in ("task", "preset", "budget") if k not in data]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)} (a proxy needs task, preset and budget)")
    file_types = _file_types()
    for k, v in data.items():
        if isinstance(v, bool) != (bool in file_types[k]) or not isinstance(v, file_types[k]):
            raise UsageError(f"{where}: {k} = {v!r} has the wrong type")
    name = data.pop("name", p.stem)
    if name in PROXIES or name in ("mad", "lm"):
        raise UsageError(f"{where}: name {name!r} is a built-in proxy's; give the file or its name another one")
    _check_proxy_settings(data, where)
    # a model preset above the CPU one wants a GPU unless the file says otherwise
    own = {k: data.pop(k) for k in PROXY_FILE_OWN_KEYS if k in data}
    own.setdefault("needs_gpu", data["preset"] != "tiny")
    own.setdefault("description", f"user-defined proxy from {p.name}: {data['task']}, preset {data['preset']}, "
                                  f"{data['budget']}")
    return Proxy(name=name, source=str(p.resolve()), train=data, **own)


def _check_proxy_settings(data: dict, where: str) -> None:
    """Refuse settings the trainer would refuse, before any job starts."""
    from aira.data.mad import resolve_settings
    from aira.models import get_preset
    from aira.train.budget import parse_budget
    from aira.train.sources import MAD_SCORES, parse_task

    try:
        spec = parse_task(data["task"])
        get_preset(data["preset"])
        budget = parse_budget(data["budget"])
        if "mad_settings" in data:
            resolve_settings(data["mad_settings"])
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    if budget.kind == "seconds":
        raise UsageError(f"{where}: budget {data['budget']!r} is a time; give steps or tokens, so that a score "
                         f"does not depend on how loaded the machine is")
    if data.get("mad_score", "accuracy") not in MAD_SCORES:
        raise UsageError(f"{where}: mad_score must be one of {', '.join(MAD_SCORES)}")
    if spec.kind != "mad" and (data.get("mad_score", "accuracy") != "accuracy" or data.get("curve_points")):
        raise UsageError(f"{where}: mad_score and curve_points apply to MAD tasks only")
    for k in ("seeds", "vocab_size", "batch_size", "seq_len", "eval_tokens", "curve_examples"):
        if k in data and data[k] < 1:
            raise UsageError(f"{where}: {k} must be at least 1, got {data[k]}")
    for k in ("lr", "timeout_s"):
        if k in data and not data[k] > 0:
            raise UsageError(f"{where}: {k} must be positive, got {data[k]}")
    for k in ("curve_points", "data_seed"):
        if k in data and data[k] < 0:
            raise UsageError(f"{where}: {k} must be at least 0, got {data[k]}")
    if not 0 <= data.get("warmup_frac", 0) < 1 or not 0 <= data.get("min_lr_frac", 0) <= 1:
        raise UsageError(f"{where}: warmup_frac must be in [0, 1) and min_lr_frac in [0, 1]")
    if data.get("tokenizer", "bpe") not in ("bpe", "bytes"):
        raise UsageError(f"{where}: tokenizer must be bpe or bytes, got {data['tokenizer']!r}")
    if data.get("schedule", "cosine") not in ("cosine", "wsd"):
        raise UsageError(f"{where}: schedule must be cosine or wsd, got {data['schedule']!r}")


# what `mad` / `lm` fall back on, per (family, device kind), when no measured transfer singles out another
DEFAULT_PROXIES = {("mad", "cpu"): "mad-cpu", ("mad", "gpu"): "mad-gpu", ("lm", "cpu"): "lm-cpu",
                   ("lm", "gpu"): "lm-gpu"}


def transfer(proxy: Proxy) -> float | None:
    """The measured small-to-large Spearman of a proxy's current settings, or None when not measured."""
    e = measured_entry(proxy)
    rho = e.get("spearman") if e is not None else None
    return float(rho) if isinstance(rho, (int, float)) else None


def choose_proxy(family: str, gpu: bool) -> tuple[Proxy, str]:
    """(the built-in proxy `family` ("mad" | "lm") stands for on a machine with or without a GPU, why)."""
    kind = "gpu" if gpu else "cpu"
    default = PROXIES[DEFAULT_PROXIES[(family, kind)]]
    pool = [p for p in PROXIES.values() if p.auto and p.family == family and p.needs_gpu == gpu]
    rho = {p.name: transfer(p) for p in pool}
    figures = ", ".join(f"{n} {'not measured' if r is None else f'rho {r:.2f}'}" for n, r in rho.items())
    bar = rho[default.name] if rho[default.name] is not None else 0.0
    better = {n: r for n, r in rho.items() if n != default.name and r is not None and r > bar}
    top = [n for n, r in better.items() if r == max(better.values())]
    where = f"{family.upper()} proxies for a {kind.upper()}"
    if len(top) == 1:
        return PROXIES[top[0]], (f"the best measured small-to-large transfer of the {where} ({figures}); "
                                 f"the default {default.name} transfers worse")
    if top:
        return default, f"the default: {', '.join(top)} tie at the top of the {where} ({figures})"
    if all(r is None for r in rho.values()):
        return default, f"the default: no small-to-large transfer is measured among the {where} ({figures})"
    return default, f"the default: no other of the {where} has a better measured small-to-large transfer ({figures})"


def pick_proxy(name: str, device: str = "auto") -> tuple[Proxy, str]:
    """(the proxy `name` stands for, why it was chosen: "" unless `name` is the family `mad` or `lm`)."""
    if is_proxy_file(name):
        return load_proxy_file(name), ""
    if name in ("mad", "lm"):
        import torch

        gpu = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
        return choose_proxy(name, gpu)
    if name not in PROXIES:
        raise UsageError(f"unknown proxy {name!r}; valid: mad, lm, {', '.join(PROXIES)}, or a proxy file "
                         f"(FILE.json / FILE.toml)")
    return PROXIES[name], ""


def resolve_proxy(name: str, device: str = "auto") -> Proxy:
    return pick_proxy(name, device)[0]


def settings_fingerprint(train: dict) -> str:
    """A proxy's training settings, resolved, as a short hash: the shipped fidelity figures of a proxy
    count only while its settings still hash to the figures' fingerprint."""
    from aira.train.cache import resolved_settings

    blob = json.dumps({"train": train, "resolved": resolved_settings(train)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_table(path: Path | None = None) -> dict:
    try:
        return json.loads((path or TABLE_PATH).read_text())
    except (OSError, ValueError):
        return {}


def table_path(proxy) -> Path:
    """Where a proxy's measured figures live: the shipped table for a built-in proxy, `<stem>.fidelity.json`
    beside the file for a user-defined one."""
    source = getattr(proxy, "source", "")
    if source:
        return Path(source).with_name(Path(source).stem + ".fidelity.json")
    return TABLE_PATH


def _table_entry_of(proxy) -> tuple[dict | None, bool]:
    """(the entry of a measured proxy, whether it still describes the proxy's settings). `proxy`: a Proxy or
    the name of a built-in one."""
    if isinstance(proxy, str):
        proxy = PROXIES.get(proxy)
        if proxy is None:
            return None, False
    e = load_table(table_path(proxy)).get(proxy.name)
    if not (isinstance(e, dict) and e.get("status") == "measured"):
        return None, False
    return e, e.get("fingerprint") == settings_fingerprint(proxy.train_kwargs())


def measured_entry(proxy) -> dict | None:
    """The shipped table entry of a proxy, or None when it was never measured or its settings changed since
    (a retuned proxy must not inherit its predecessor's figures)."""
    e, current = _table_entry_of(proxy)
    return e if current else None


def stale_entry(proxy) -> dict | None:
    """The shipped entry of a proxy whose settings changed after it was measured, else None."""
    e, current = _table_entry_of(proxy)
    return e if e is not None and not current else None
