"""The harness side of the autoresearch task: run one train.py in the sandbox, then score its model.

    evaluate_script(script=..., preset="cpu", seed=0, data="shakespeare") -> dict (a Result)

1. The frozen files (prepare.py, this file) are hashed before and after; a change fails the node.
2. The script runs in `aira.agents.sandbox` (no network, own uid, read-only training tokens only: the
   corpus's files and the token caches are masked, `data.held_out_paths`) with
   the harness's preset, seed and time budget in its environment; it is killed at `kill_factor` x the
   budget plus a start-up allowance (status timed-out).
3. The model it exported (`model.pt2`, a `torch.export` graph: no agent Python runs here) is loaded in
   this process and scored: val_bpb on the validation split is the search metric the agent sees, the
   same on the hidden held-out split is the selection metric. Bytes come from each target token's raw
   UTF-8 bytes (aira.train.metrics), so a token that holds part of a character is not over-counted.
4. A script that saves no model, or whose model does not map ids (B, T) to logits (B, T, vocab), is a
   crashed node whose error says so in one line, for the debug operator.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from aira.agents.sandbox import drop_data, open_regular
from aira.data.shards import TokenData
from aira.tasks.autoresearch import prepare
from aira.tasks.autoresearch.data import held_out_paths, open_data, stage_train
from aira.tasks.autoresearch.presets import get_preset
from aira.train.metrics import bits_per_byte, count_target_bytes, mask_zero_byte_targets, token_nll_sum

HERE = Path(__file__).resolve().parent
FROZEN_FILES = ("prepare.py", "evaluate.py", "data.py", "presets.py")
SCRIPT = "train.py"
SANDBOX = "train"  # the sandbox's own folder inside the job folder (ours)
MAX_MODEL_BYTES = 4 << 30  # the sandbox's file-size limit (max_file_mb below)


def frozen_hashes() -> dict[str, str]:
    """SHA-256 of every frozen file of the task, by name."""
    return {name: hashlib.sha256((HERE / name).read_bytes()).hexdigest() for name in FROZEN_FILES}


def _changed(expected: dict[str, str] | None) -> list[str]:
    if not expected:
        return []
    now = frozen_hashes()
    return [name for name, sha in expected.items() if now.get(name) != sha]


@torch.no_grad()
def split_bpb(logits_fn: Callable[[torch.Tensor], torch.Tensor], data: TokenData, split: str, *,
              seq_len: int, batch: int = 16, max_tokens: int | None = None,
              device: torch.device | str = "cpu") -> tuple[float, int, int]:
    """(bits per byte, target tokens, target bytes) of a model over `split`'s evaluation windows.

    Targets whose token has no bytes (special tokens) are left out of both sums."""
    table = torch.as_tensor(data.bytes_per_token, dtype=torch.int64, device=device)
    nats, n_bytes, n_tokens = 0.0, 0, 0
    for x, y in data.iter_eval(split, batch, seq_len, max_tokens=max_tokens):
        x, y = x.to(device), y.to(device)
        logits = logits_fn(x)
        if tuple(logits.shape) != (*y.shape, data.vocab_size):
            raise InterfaceError(f"the model returned logits of shape {tuple(logits.shape)}, expected "
                                 f"{(*y.shape, data.vocab_size)} (batch, seq, vocab)")
        y = mask_zero_byte_targets(y, table)
        nats += token_nll_sum(logits, y)
        n_bytes += count_target_bytes(y, table)
        n_tokens += int((y >= 0).sum())
    return bits_per_byte(nats, n_bytes), n_tokens, n_bytes


class InterfaceError(RuntimeError):
    """The saved model does not fit the task's interface."""


def load_model(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        program = torch.export.load(str(path))
        module = program.module()
    except Exception as e:  # noqa: BLE001 - any failure to load is the script's fault, told in one line
        raise InterfaceError(f"{prepare.MODEL_FILE} could not be loaded: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from None
    module.to(device)
    return lambda x: module(x)


def summary_lines(text: str) -> dict[str, float | str]:
    """The script's final `key: value` lines (after the last '---'), numbers parsed."""
    out: dict[str, float | str] = {}
    for line in text.split("\n---\n")[-1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.strip() and " " not in key.strip():
            try:
                out[key.strip()] = float(value)
            except ValueError:
                out[key.strip()] = value.strip()
    return out


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


RESERVED = {"status", "metric", "selection_metric", "val_bpb", "error", "seconds", "eval_tokens",
            "eval_bytes", "metrics", "log_path"}
_RESERVED_PREFIXES = ("selection", "true")
_PLAIN_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _squash(key: str) -> str:
    """The letters and digits of a key, case-folded: `Val_BPB`, `VAL__bpb` and `valbpb` are one name."""
    return "".join(c for c in unicodedata.normalize("NFKC", key).casefold() if c.isalnum())


def script_keys(summary: dict[str, float | str], taken: Iterable[str]) -> dict[str, float | str]:
    """The script's summary lines that may go into the result: plain ASCII names only (no look-alike
    letters, no invisible characters), and none that names, in any case or spelling of underscores, a
    reserved key or a key the harness set itself (`taken`)."""
    blocked = {_squash(k) for k in (*RESERVED, *taken)}
    out = {}
    for key, value in summary.items():
        squashed = _squash(key)
        if (_PLAIN_KEY.fullmatch(key) and squashed not in blocked
                and not squashed.startswith(_RESERVED_PREFIXES)):
            out[key] = value
    return out


def _fail(out: dict, status: str, error: str, t0: float) -> dict:
    return {**out, "status": status, "error": error.strip(), "seconds": time.time() - t0}


def evaluate_script(*, script: str, preset: str = "cpu", seed: int = 0, data: str = "shakespeare",
                    time_budget_s: float | None = None, startup_allowance_s: float | None = None,
                    cache_dir: str | None = None, frozen_sha: dict[str, str] | None = None,
                    work_dir: str | None = None, job_id: str = "eval", allow_unsafe: bool = False,
                    keep_model: bool = False, echo: bool = False) -> dict:
    """Train `script` (train.py's text) in the sandbox and score its model. Returns a Result dict.

    `work_dir`: keep each job's folder (run.log, and train/ with train.py) as `work_dir/job_id`; else a
    temporary one.
    `echo`: relay the script's output lines to stderr while it trains (`aira design eval` does: a gpu
    evaluation runs for minutes)."""
    t0 = time.time()
    p = get_preset(preset, time_budget_s=time_budget_s, startup_allowance_s=startup_allowance_s)
    if changed := _changed(frozen_sha):
        return _fail({}, "crashed", f"frozen file(s) changed since the run started: {', '.join(changed)}", t0)
    tokens = open_data(data, vocab_size=p.vocab_size, cache_dir=cache_dir)
    device = _device()
    # Our folder (run.log, the model we load) holds the sandbox's folder `train/`: only that one is the
    # script's, so nothing we write can land on a link it planted.
    root = Path(work_dir) / job_id if work_dir else Path(tempfile.mkdtemp(prefix="aira-ar-"))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    try:
        out = {"preset": p.name, "time_budget_s": p.time_budget_s, "data": str(data),
               "device": device_name(device)}
        res = _train(script, root, p, seed, stage_train(tokens), device, allow_unsafe, echo=echo,
                     masked=held_out_paths(data, tokens))
        # The script's own summary is informational only (it runs in the sandbox, so it is untrusted):
        # it never sets the status or a metric.
        out.update(script_keys(summary_lines(res.stdout_tail), out))
        out |= {"sandbox": res.violation or "isolated", "train_wall_s": round(res.seconds, 3)}
        if res.status.value == "timed-out":
            return _fail(out, "timed-out", f"killed after {p.kill_after_s:g}s: {p.kill_factor:g} x the "
                         f"{p.time_budget_s:g}s budget + {p.startup_allowance_s:g}s start-up allowance", t0)
        if res.status.value != "ok":
            status, why = res.failure()
            return _fail(out, status, f"train.py failed ({why}):\n{res.stderr_tail}", t0)
        model = open_regular(root / SANDBOX / prepare.MODEL_FILE, MAX_MODEL_BYTES)
        if model is None:
            return _fail(out, "crashed", "train.py saved no model: end it with save_model(model, run) from "
                         f"aira.tasks.autoresearch.prepare (the harness reads {prepare.MODEL_FILE} only as a "
                         f"regular file of at most {MAX_MODEL_BYTES >> 30} GiB, never through a link)", t0)
        model_path = root / prepare.MODEL_FILE  # our copy: what we load is what we checked
        with model, open(model_path, "wb") as dst:
            shutil.copyfileobj(model, dst)
        (root / SANDBOX / prepare.MODEL_FILE).unlink(missing_ok=True)
        if echo:
            print(f"aira: train.py ended after {res.seconds:.0f} s; scoring its model on the validation and "
                  f"held-out splits...", file=sys.stderr, flush=True)
        try:
            fn = load_model(model_path, device)
            kw = {"seq_len": p.eval_seq_len, "max_tokens": p.eval_tokens, "device": device}
            val, n_tok, n_bytes = split_bpb(fn, tokens, "val", **kw)
            held, _, _ = split_bpb(fn, tokens, "heldout", **kw)
        except InterfaceError as e:
            return _fail(out, "crashed", f"the model does not fit the interface: {e}", t0)
        except RuntimeError as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            return _fail(out, "crashed", f"the model does not fit the interface (ids (B, {p.eval_seq_len}) "
                         f"-> logits (B, {p.eval_seq_len}, vocab)): {first}", t0)
        if not keep_model:
            model_path.unlink(missing_ok=True)
        if changed := _changed(frozen_sha):
            return _fail(out, "crashed", f"frozen file(s) changed during the run: {', '.join(changed)}", t0)
        status = "ok" if math.isfinite(val) and math.isfinite(held) else "diverged"
        return {**out, "status": status, "metric": val, "selection_metric": held, "val_bpb": val,
                "eval_tokens": n_tok, "eval_bytes": n_bytes, "seconds": time.time() - t0}
    finally:
        if not work_dir:
            shutil.rmtree(root, ignore_errors=True)
        elif not keep_model:
            (root / prepare.MODEL_FILE).unlink(missing_ok=True)


def _train(script: str, root: Path, p, seed: int, train_dir: Path, device: torch.device, allow_unsafe: bool,
           *, echo: bool = False, masked: list[Path] = ()):
    """Run train.py in the sandbox (its folder root/train/) with the harness's settings; its output tail
    goes to root/run.log."""
    from aira.agents.sandbox import relay_to_stderr, run_sandboxed

    work = root / SANDBOX
    work.mkdir()
    (work / SCRIPT).write_text(script)
    env = {prepare.ENV_PRESET: p.name, prepare.ENV_SEED: str(seed),
           prepare.ENV_BUDGET: f"{p.time_budget_s:g}", prepare.ENV_EVAL_SEQ: str(p.eval_seq_len),
           prepare.ENV_DEVICE: device.type,
           prepare.ENV_DATA: str(work.resolve() / "data" / train_dir.name)}
    res = run_sandboxed([sys.executable, SCRIPT], workdir=work, readonly_paths=[train_dir],
                        timeout_s=p.kill_after_s, mem_mb=p.mem_mb, allow_unsafe=allow_unsafe,
                        extra_env=env, max_file_mb=4096, tail_lines=60, masked=masked, on_output=relay_to_stderr(SCRIPT) if echo else None)
    err = f"\n--- stderr ---\n{res.stderr_tail}" if res.stderr_tail else ""
    (root / "run.log").write_text(res.stdout_tail + err)
    drop_data(work)  # the read-only data copy is not part of the record (and is a full copy across file systems)
    return res
