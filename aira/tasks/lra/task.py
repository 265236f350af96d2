"""The LRA design Task (`lra-listops`, `lra-text`, `lra-retrieval`, `lra-image`, `lra-pathfinder`):
agents write `attention.py`; the harness trains it in the sandbox and scores it itself.

How one evaluation runs (`evaluate_job`, in the executor's worker process, i.e. the harness side):

1. The task stages the data once per run (`stage_split`). The validation and test rows are drawn from
   a secret seed (`hidden_seed`, random per run folder unless given), so code that knows the package
   and the public data seed cannot regenerate them. The training sandbox's copy holds the training
   split and a labelled slice of it as its "val", and no validation or test row at all. The held-out
   inputs and their labels go to `held/`, a 0700 folder the sandbox uid cannot read (and that both
   sandboxes mask, as they mask a real data_dir).
2. Training: `attention.py` runs in `aira.agents.sandbox` (no network, no secrets, own uid and folder,
   data read-only, CPU / memory / file-size / process limits, the harness's wall clock) through the
   frozen evaluator (`evaluate_attention(..., split_dir=..., export=...)`), which checks the contract on
   random input first (a failure is an INVALID node whose error is the contract's one line, for the
   debug operator), trains, and saves the weights. The agent's code shares that process, so everything
   it reports there is untrusted; only the weights go on.
3. Scoring: a second sandbox (a fresh uid) gets the file, the weights and the held-out inputs, never a
   label, and writes one predicted class per row (`predict_exported`). Its output never reaches the
   agent (the code in it has seen the held-out inputs). The harness compares the predictions with the
   labels it kept: validation accuracy (`metric`, the search split) and test accuracy
   (`selection_metric`, hidden from agents).

Settings: in the "fixed" setting the file is all; in the "configurable" setting the file may hold a
literal `SETTINGS = {...}` (d_model, n_layers, n_heads, lr, weight_decay, dropout, batch_size,
attention_kwargs) within the preset's caps, read with ast.literal_eval by the harness and checked by
`validate_settings` before any job is submitted.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from aira.agents.base import ProposalSpace, Task
from aira.agents.sandbox import drop_data, open_regular
from aira.agents.types import Job
from aira.errors import UsageError
from aira.tasks.lra.offline import EDITABLE, SETTINGS_NAME, MechanismSpace, read_settings

SETTINGS = ("fixed", "configurable")
SPLIT_FOLDER = "splits"   # the training sandbox sees it as data/splits
HELD_FOLDER = "held"      # 0700: the held-out inputs (inputs/, for the scoring sandbox) and labels.pt
INNER_VAL = 128           # labelled training rows the sandbox may score itself on (informational)
WEIGHTS = "model.pt"      # the trained state dict, from the training sandbox to the scoring one
MAX_WEIGHTS_BYTES = 4 << 30
# Wall-clock limit of one sandboxed evaluation per preset (seconds), and its address-space limit.
# cpu: measured 50-75 CPU s per task on one core, 2-3x that in wall time on a busy machine.
TIMEOUT_S = {"smoke": 180.0, "cpu": 900.0, "gpu": 6 * 3600.0}
MEM_MB = {"smoke": 8192, "cpu": 16384, "gpu": None}  # RLIMIT_AS; CUDA reserves too much to cap
SCORE_TIMEOUT_S = {"smoke": 120.0, "cpu": 300.0, "gpu": 3600.0}  # the scoring sandbox's wall clock
HARNESS_ALLOWANCE_S = 120.0  # staging, scoring and the sandbox's own start on top of the limit

DESCRIPTION = """\
Long Range Arena, {task} ({setting} setting, preset {preset}). You write ONE file, attention.py, the
token mixer of a frozen encoder classifier:

    class Attention(nn.Module):
        def __init__(self, d_model, n_heads, max_len, **kwargs): ...
        def forward(self, x, key_padding_mask):   # x (B, L, D); mask (B, L) bool, True = padding
            return y                              # (B, L, D), bidirectional

Frozen around it: token + learned positional embeddings, {n_layers} pre-norm residual blocks
[Attention, GELU MLP], masked mean pooling, a 2-layer head{pair}; the trainer (AdamW, warm-up + cosine,
{steps} steps), the data and the metric. Data: {source}; sequences up to {max_len} tokens, {n_classes}
classes, id 0 is padding.
Metric: classification accuracy on the validation split, HIGHER is better. The harness trains your model
in one sandbox (training rows only), then runs the trained weights on held-out inputs in another and
compares the predictions with labels it keeps: no validation or test row or label is ever readable.
Before training, the harness checks on random input: output shape, finite values, padding respected
(changing padded inputs must not change other outputs), finite gradients, at most {max_params:,}
parameters per Attention module and {max_flops:.3g} forward FLOPs per token at length {max_len}.
A failure comes back as one line. The code runs in a sandbox without network, with a {timeout:g} s limit.
Only torch is needed. Do not read files or the environment, start processes, signal or trace any
process (the harness's above all), or patch the frozen trainer: a signal to the harness ends the
run as a contract breach, and the rest can change nothing that is scored.
{settings_text}Known mechanisms to start from or beat: {mechanisms}.
"""

FIXED_TEXT = ("Fixed setting: model width, depth, heads and the optimiser are the preset's "
              "(d_model {d_model}, {n_layers} layers, {n_heads} heads, lr {lr:g}); do not define {name}.\n")
CONFIGURABLE_TEXT = (
    "Configurable setting: attention.py may define a literal dict {name} = {{...}} with any of d_model "
    "(<= {max_d}), n_layers (<= {max_l}), n_heads (<= {max_h}, dividing d_model), lr (<= {max_lr:g}), "
    "weight_decay, dropout (<= {max_do:g}), batch_size (<= {max_b}), attention_kwargs (scalars passed "
    "to Attention). Defaults: {defaults}.\n")


def _check_choice(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class LraTask(Task):
    lower_is_better = False
    proposal_kind = "file"
    editable_file = EDITABLE
    metric_name = "val_accuracy"

    def __init__(self, task: str = "lra-listops", *, preset: str = "cpu", setting: str = "fixed",
                 data_dir: str | None = None, data_seed: int = 0, work_dir: str | None = None,
                 timeout_s: float | None = None, mem_mb: int | None = None, allow_unsafe: bool = False,
                 hidden_seed: int | None = None):
        from aira.data.lra import load_lra
        from aira.tasks.lra.presets import get_preset
        from aira.tasks.lra.references import best_published

        self.preset = get_preset(task, preset)  # UsageError for a bad task or preset name
        self.name, self.setting = task, _check_choice(setting, SETTINGS, "LRA setting")
        self.data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None
        self.timeout_s = float(timeout_s or TIMEOUT_S[preset])
        self.mem_mb = mem_mb if mem_mb is not None else MEM_MB[preset]
        self.allow_unsafe, self.data_seed = allow_unsafe, data_seed
        if work_dir:
            self.work_dir = Path(work_dir).resolve()
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="aira-lra-"))
            weakref.finalize(self, shutil.rmtree, str(self.work_dir), True)
        key = f"{task}-{preset}-seed{data_seed}"
        if self.data_dir:  # one staged copy per data folder
            key += "-" + hashlib.sha256(self.data_dir.encode()).hexdigest()[:8]
        if hidden_seed is not None:  # a pinned secret (reproducing a run); else the run folder's own
            key += "-h" + hashlib.sha256(str(hidden_seed).encode()).hexdigest()[:8]
        dest = self.work_dir / "data" / key
        self.split_dir, self.held_dir = dest / SPLIT_FOLDER, dest / HELD_FOLDER
        self.labels_path = self.held_dir / "labels.pt"
        if not _staged(dest):
            secret = hidden_seed if hidden_seed is not None else secrets.randbits(52)
            data = load_lra(task, data_dir=self.data_dir, preset=self.preset.data_preset, seed=data_seed,
                            hidden_seed=secret)
            stage_split(data, dest, hidden_seed=secret)
        meta = json.loads((self.split_dir / "meta.json").read_text())
        self.standin, self.source, self.pair = meta["standin"], meta["source"], meta["pair"]
        self.max_len, self.n_classes = meta["max_len"], meta["n_classes"]
        self.n_val, self.n_test = meta["held_out"]["val"], meta["held_out"]["test"]
        # A stand-in (or any small preset) is never compared with published numbers: no NS reference.
        self.reference_score = None if self.standin else best_published(task)[1] / 100.0
        # what neither sandbox may read: our held-out folder (it is 0700, but not to a same-uid sandbox
        # without root) and a real data folder (its validation and test files)
        self.masked = [str(self.held_dir)] + ([self.data_dir] if self.data_dir else [])

    @property
    def configurable(self) -> bool:
        return self.setting == "configurable"

    # --- what the agent reads --------------------------------------------------------------------

    def describe(self) -> str:
        from aira.tasks.lra.mechanisms import MECHANISMS

        p, d, c = self.preset, self.preset.defaults, self.preset.caps
        if self.configurable:
            defaults = json.dumps(MechanismSpace(p).default_settings())
            text = CONFIGURABLE_TEXT.format(name=SETTINGS_NAME, max_d=c.max_d_model, max_l=c.max_n_layers,
                                            max_h=c.max_n_heads, max_lr=c.max_lr, max_do=c.max_dropout,
                                            max_b=c.max_batch_size, defaults=defaults)
        else:
            text = FIXED_TEXT.format(d_model=d.d_model, n_layers=d.n_layers, n_heads=d.n_heads, lr=d.lr,
                                     name=SETTINGS_NAME)
        standin = ("" if not self.standin else
                   " (a stand-in or reduced size: scores are not comparable with published LRA numbers)")
        return DESCRIPTION.format(
            task=self.name, setting=self.setting, preset=p.name, n_layers=d.n_layers,
            pair=" reading [u, v, u*v, u-v] of a shared two-tower encoder" if self.pair else "",
            steps=p.steps, source=self.source + standin, max_len=self.max_len, n_classes=self.n_classes,
            max_params=p.max_attention_params, max_flops=p.max_attention_flops_per_token,
            timeout=self.timeout_s, settings_text=text,
            mechanisms="; ".join(f"{k}: {v}" for k, v in MECHANISMS.items()))

    # --- proposals -------------------------------------------------------------------------------

    def reference(self) -> dict:
        """Full softmax attention: the baseline whose seeds give the noise floor."""
        return self.space().library_proposal("softmax")

    def baselines(self) -> dict[str, Any]:
        """Every mechanism of the library, for the `baselines` policy."""
        space = self.space()
        return {name: space.library_proposal(name) for name in space.library}

    def validate(self, proposal: Any) -> str | None:
        from aira.tasks.files import parse_single_file

        tree, error = parse_single_file(proposal, EDITABLE)
        if error:
            return error
        names = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name)}
        if "Attention" not in names:
            return f"{EDITABLE} must define `class Attention(nn.Module)` at the top level"
        try:
            self.settings_of(proposal)
        except ValueError as e:
            return str(e)
        return None

    def settings_of(self, proposal: Any) -> dict | None:
        """The proposal's SETTINGS (configurable setting), checked against the caps; ValueError with one
        line when they are not allowed or not valid."""
        from aira.tasks.lra.contract import validate_settings
        from aira.tasks.lra.model import ContractError

        code = proposal["files"][EDITABLE]
        settings = read_settings(code)
        if settings is None:
            return None
        if not self.configurable:
            raise ValueError(f"the fixed setting takes no {SETTINGS_NAME}: remove it (model and optimiser "
                             f"settings are the preset's; --setting configurable allows them)")
        try:
            validate_settings(settings, self.preset)
        except ContractError as e:
            raise ValueError(f"{SETTINGS_NAME}: {e}") from None
        return settings

    def space(self) -> ProposalSpace:
        return MechanismSpace(self.preset, configurable=self.configurable)

    def make_job(self, proposal: Any, *, seed: int, job_id: str) -> Job:
        gpu = self.preset.name == "gpu"
        score_s = SCORE_TIMEOUT_S[self.preset.name]
        return Job(id=job_id, fn="aira.tasks.lra.task:evaluate_job",
                   timeout_s=self.timeout_s + score_s + HARNESS_ALLOWANCE_S, gpus=1 if gpu else 0,
                   kwargs={"code": proposal["files"][EDITABLE], "task": self.name, "preset": self.preset.name,
                           "seed": seed, "settings": self.settings_of(proposal),
                           "split_dir": str(self.split_dir), "held_dir": str(self.held_dir),
                           "masked": self.masked, "work_dir": str(self.work_dir / "jobs"), "job_id": job_id,
                           "timeout_s": self.timeout_s, "score_timeout_s": score_s, "mem_mb": self.mem_mb,
                           "allow_unsafe": self.allow_unsafe, "standin": self.standin, "source": self.source})


# ---------------------------------------------------------------------------------------------------
# Harness side: staging the data, running one file in the sandbox, scoring its predictions


def _staged(dest: Path) -> bool:
    return ((dest / SPLIT_FOLDER / "meta.json").is_file() and (dest / HELD_FOLDER / "labels.pt").is_file()
            and (dest / HELD_FOLDER / "inputs" / "meta.json").is_file())


def stage_split(data, dest: Path, *, hidden_seed: int | None = None) -> tuple[Path, Path]:
    """Write what the training sandbox may read to `dest/splits` (training rows only) and the held-out
    inputs (`inputs/`, validation then test rows, no labels) and labels (`labels.pt`) to `dest/held`
    (0700, files 0600 or within it); returns (splits, held). Idempotent for the same data."""
    import torch

    from aira.data.lra.core import LraData, Split, take

    split_dir, held = dest / SPLIT_FOLDER, dest / HELD_FOLDER
    if _staged(dest):
        return split_dir, held

    def cat(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None or b is None:
            return None
        width = max(a.shape[1], b.shape[1])  # 0 is padding, so right-padding changes nothing
        pad = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in (a, b)]
        return torch.cat(pad)

    def shaped(split: Split, rows: Split) -> LraData:
        none = take(split, torch.arange(0))  # an empty split of the right width
        return LraData(task=data.task, train=none, val=none if rows is None else rows, test=split,
                       vocab_size=data.vocab_size, max_len=data.max_len, n_classes=data.n_classes,
                       standin=data.standin, source=data.source, pair=data.pair)

    scored = Split(x=cat(data.val.x, data.test.x), y=None, x2=cat(data.val.x2, data.test.x2))
    inner = take(data.train, torch.arange(min(INNER_VAL, len(data.train))))
    inside = shaped(take(data.train, torch.arange(0)), inner)
    inside.train = data.train
    tmp = dest / ".staging"
    shutil.rmtree(tmp, ignore_errors=True)
    inside.save_split(tmp / SPLIT_FOLDER, include_labels=False)
    meta_path = tmp / SPLIT_FOLDER / "meta.json"
    meta = json.loads(meta_path.read_text()) | {"held_out": {"val": len(data.val), "test": len(data.test)}}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    (tmp / HELD_FOLDER).mkdir(mode=0o700)
    os.chmod(tmp / HELD_FOLDER, 0o700)
    shaped(scored, None).save_split(tmp / HELD_FOLDER / "inputs", include_labels=False)
    torch.save({"val": data.val.y.clone(), "test": data.test.y.clone()}, tmp / HELD_FOLDER / "labels.pt")
    os.chmod(tmp / HELD_FOLDER / "labels.pt", 0o600)
    if hidden_seed is not None:  # for an audit of the run (never passed to a job)
        (tmp / HELD_FOLDER / "hidden_seed").write_text(f"{hidden_seed}\n")
        os.chmod(tmp / HELD_FOLDER / "hidden_seed", 0o600)
    for name in (SPLIT_FOLDER, HELD_FOLDER):
        shutil.rmtree(dest / name, ignore_errors=True)
        (tmp / name).rename(dest / name)
    tmp.rmdir()
    return split_dir, held


TRAINER = """\
import json, sys
from aira.tasks.lra.evaluate import evaluate_attention
settings = json.load(open("settings.json")) if sys.argv[4] == "1" else None
r = evaluate_attention("attention.py", sys.argv[1], preset=sys.argv[2], seed=int(sys.argv[3]),
                       settings=settings, split_dir="data/splits", export="model.pt")
with open("result.json", "w") as f:
    json.dump(r, f, default=str)
"""
SCORER = """\
import json, sys
from aira.tasks.lra.evaluate import predict_exported
settings = json.load(open("settings.json")) if sys.argv[4] == "1" else None
preds = predict_exported("attention.py", "model.pt", "data/inputs", sys.argv[1], preset=sys.argv[2],
                         seed=int(sys.argv[3]), settings=settings)
with open("predictions.json", "w") as f:
    json.dump(preds, f)
"""
# Descriptive keys copied from the sandbox's (untrusted) result; never a status-deciding metric.
_INFO = {"params": int, "attention_params": int, "flops": float, "flops_note": str, "train_loss": float,
         "settings": dict, "steps": int, "traceback": str, "cpu_seconds": float}
_STATUSES = {"ok", "invalid", "diverged", "crashed"}


def _clean(raw: dict) -> dict:
    out = {}
    for key, kind in _INFO.items():
        v = raw.get(key)
        if isinstance(v, kind) or (kind is float and isinstance(v, int) and not isinstance(v, bool)):
            out["sandbox_cpu_seconds" if key == "cpu_seconds" else key] = v[:2000] if kind is str else v
    inner = raw.get("metric")
    if isinstance(inner, (int, float)) and not isinstance(inner, bool):
        out["sandbox_train_slice_accuracy"] = float(inner)  # its own claim, on training rows: a hint only
    return out


def _accuracy(pred: list[int], labels) -> float:
    return sum(int(p == y) for p, y in zip(pred, labels.tolist())) / max(1, len(labels))


def _read_json(path: Path, max_bytes: int = 64 << 20):
    f = open_regular(path, max_bytes)
    if f is None:
        return None
    with f:
        try:
            return json.loads(f.read(max_bytes))
        except ValueError:
            return None


def _sandbox_dir(path: Path, code: str, settings: dict | None) -> Path:
    path.mkdir()
    (path / EDITABLE).write_text(code)
    if settings is not None:
        (path / "settings.json").write_text(json.dumps(settings))
    return path


def evaluate_job(*, code: str, task: str, preset: str, seed: int, settings: dict | None, split_dir: str,
                 held_dir: str, work_dir: str | None, job_id: str, timeout_s: float,
                 score_timeout_s: float | None = None, masked: list[str] = (), mem_mb: int | None = None,
                 allow_unsafe: bool = False, standin: bool = True, source: str = "",
                 keep_workdir: bool = True, echo: bool = False) -> dict:
    """Train one attention.py in a sandbox, predict the held-out rows with its weights in another, and
    score the predictions here (module docstring). Returns a Result dict. `echo`: relay the training
    run's output lines (progress every 15 s) to stderr while it trains."""
    import torch

    from aira.agents.sandbox import relay_to_stderr, run_sandboxed

    t0 = time.time()
    out: dict[str, Any] = {"task": task, "preset": preset, "seed": seed, "standin": standin, "source": source}

    def fail(status: str, error: str) -> dict:
        return out | {"status": status, "metric": None, "selection_metric": None, "error": error.strip(),
                      "seconds": time.time() - t0}

    # Our folder holds the two sandboxes' folders; only they are theirs, so nothing we write here (run.log)
    # can be a link they planted.
    root = Path(work_dir) / job_id if work_dir else Path(tempfile.mkdtemp(prefix="aira-lra-job-"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    flag = "1" if settings is not None else "0"
    limits = {"mem_mb": mem_mb, "allow_unsafe": allow_unsafe, "masked": masked}
    try:
        train_dir = _sandbox_dir(root / "train", code, settings)
        cmd = [sys.executable, "-c", TRAINER, task, preset, str(seed), flag]
        res = run_sandboxed(cmd, workdir=train_dir, readonly_paths=[split_dir], timeout_s=timeout_s,
                            max_file_mb=1024, tail_lines=40, **limits,
                            on_output=relay_to_stderr(EDITABLE) if echo else None)
        drop_data(train_dir)
        log = res.stdout_tail + (f"\n--- stderr ---\n{res.stderr_tail}" if res.stderr_tail else "")
        (root / "run.log").write_text(log)
        out |= {"sandbox": res.violation or "isolated", "sandbox_seconds": round(res.seconds, 3)}
        if res.status.value == "timed-out":
            return fail("timed-out", f"{EDITABLE} was killed at the {timeout_s:g} s wall-clock limit")
        if res.status.value != "ok":
            status, why = res.failure()
            return fail(status, f"{EDITABLE} failed in the sandbox ({why}):\n{res.stderr_tail[-1500:]}")
        raw = _read_json(train_dir / "result.json")
        if not isinstance(raw, dict):
            return fail("crashed", "the sandboxed evaluation wrote no readable result.json")
        out |= _clean(raw)
        status = raw.get("status")
        if status not in _STATUSES:
            return fail("crashed", f"the sandboxed evaluation returned an unknown status {status!r}")
        if status != "ok":
            error = raw.get("error")
            return fail(status, error if isinstance(error, str) and error else f"{status} without a message")

        score_dir = _sandbox_dir(root / "score", code, settings)
        weights = open_regular(train_dir / WEIGHTS, MAX_WEIGHTS_BYTES)
        if weights is None:
            return fail("crashed", f"training saved no readable {WEIGHTS} (the trained state dict)")
        with weights, open(score_dir / WEIGHTS, "wb") as dst:
            shutil.copyfileobj(weights, dst)
        (train_dir / WEIGHTS).unlink(missing_ok=True)
        cmd = [sys.executable, "-c", SCORER, task, preset, str(seed), flag]
        score_s = score_timeout_s or timeout_s
        res = run_sandboxed(cmd, workdir=score_dir, readonly_paths=[Path(held_dir) / "inputs"],
                            timeout_s=score_s, max_file_mb=64, tail_lines=5, **limits)
        out["score_sandbox_seconds"] = round(res.seconds, 3)
        # Its output is not shown: the code that wrote it has seen the held-out inputs.
        if res.status.value != "ok":
            status, why = res.failure()
            return fail(status, f"the trained model failed on the held-out inputs ({why}; limit {score_s:g} s); "
                                f"its output is not shown, since that run saw the held-out inputs")
        preds = _read_json(score_dir / "predictions.json")
        labels = torch.load(Path(held_dir) / "labels.pt", weights_only=True)
        n_val, n_test = len(labels["val"]), len(labels["test"])
        if (not isinstance(preds, list) or len(preds) != n_val + n_test
                or not all(isinstance(p, int) and not isinstance(p, bool) for p in preds)):
            return fail("crashed", f"expected {n_val + n_test} integer predictions (validation then test "
                                   f"rows), got {len(preds) if isinstance(preds, list) else type(preds).__name__}")
        val_acc, test_acc = _accuracy(preds[:n_val], labels["val"]), _accuracy(preds[n_val:], labels["test"])
        status = "ok" if math.isfinite(val_acc) else "crashed"
        return out | {"status": status, "metric": val_acc, "selection_metric": test_acc,
                      "val_accuracy": val_acc, "test_accuracy": test_acc, "error": "",
                      "seconds": time.time() - t0}
    finally:
        drop_data(root / "train")  # result.json and run.log stay, as the record
        shutil.rmtree(root / "score", ignore_errors=True)  # it saw the held-out inputs: nothing of it stays
        if not (work_dir and keep_workdir):
            shutil.rmtree(root, ignore_errors=True)


# Registry factories (aira.tasks.registry names them by string, so listing tasks imports no torch).
lra_listops = functools.partial(LraTask, "lra-listops")
lra_text = functools.partial(LraTask, "lra-text")
lra_retrieval = functools.partial(LraTask, "lra-retrieval")
lra_image = functools.partial(LraTask, "lra-image")
lra_pathfinder = functools.partial(LraTask, "lra-pathfinder")
