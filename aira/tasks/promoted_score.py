"""Harness-computed scores for Compose candidates that use a promoted primitive (`--primitive X=...`).

A promoted mechanism is foreign code, so a candidate using it is scored the way LRA scores an agent's
file (aira/tasks/lra/task.py): the numbers that count are computed here, in a process that never ran the
mechanism's code, from outputs the mechanism's model gave on rows it could not regenerate.
`evaluate_promoted` is the job function (run by the executor's worker, not sandboxed):

1. Training sandbox (`aira.agents.sandbox`, own uid, no network, rlimits, wall clock): the trainer trains
   every seed x MAD task as the plain path does (`aira.train.trainer.train_for_export`, same seeds and
   batches) and saves each model's state dict; it scores nothing. What it reports (status, steps,
   parameter and FLOP counts) is descriptive only; its weights are read here with
   `torch.load(weights_only=True)` and re-saved, so only tensors travel on.
2. Scoring sandbox (a fresh uid): the mechanism's source, the weights and the evaluation inputs, no label.
   The inputs are the public val rows (the search split: agents see its score anyway), select rows drawn
   from the run's secret seed (`hidden_seed`, a 0600 file in the run folder that no sandbox can read; same
   generator and settings as the proxy's select split, `aira.data.mad.make_mad(hidden_seed=...)`), and
   audit copies (step 3), all shuffled by a secret permutation. At every position of every row it returns
   the logits of the task's answer tokens (`subset`: every token that is an answer anywhere in the task),
   the largest other logit and its token, and the log-sum-exp over the whole vocabulary: what accuracy
   and cross-entropy need, a few MB where full logits would be hundreds.
3. Causality audit: a secret random subset of rows (AUDIT_FRACTION, at least AUDIT_MIN) is copied with
   every token after a random cut replaced by random tokens. Outputs at and before the cut must equal the
   original row's (AUDIT_TOL x their scale); otherwise the evaluation is a contract breach (status
   crashed, error "contract breach: causality audit ...") and gets no score. It catches a mechanism that
   passes the contract check but reads later tokens at evaluation time (in eval mode, in large batches).
4. The harness computes accuracy, loss, probability of the right answer and loglik with
   `aira.train.sources.MadSource.evaluate`'s formulas, per seed the trainer's result fields, and the seed
   mean as `aira.tasks.compose` does.

MAD proxies only: an LM proxy's scoring inputs are its labels (the next token is the next input) and its
full logits are vocabulary x tokens, so `check_scorable` refuses it, and a learning-curve score
(`curve_points`, which scores mid-training models). Cost: one more sandboxed interpreter per candidate.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from aira.errors import UsageError

AUDIT_FRACTION = 1 / 16  # of the scored rows, per seed and task
AUDIT_MIN = 8
AUDIT_TOL = {"cpu": 1e-4, "cuda": 3e-2}  # x max(1, |output|): batch composition changes float sums only
EVAL_BATCH = 128  # MadSource.evaluate's
MAX_WEIGHTS_BYTES = 4 << 30
MAX_OUTPUT_BYTES = 2 << 30
SCORE_TIMEOUT_FRACTION = 0.5  # the scoring sandbox's wall clock, of the training one's (at least 60 s)
HIDDEN_SEED = "hidden_seed"  # the file in the run's secret folder
MEM_MB = 16384  # RLIMIT_AS of a CPU proxy's sandboxes; none for a GPU's (CUDA reserves too much to cap)

TRAINER = "from aira.tasks.promoted_score import sandbox_train; sandbox_train()"
SCORER = "from aira.tasks.promoted_score import sandbox_score; sandbox_score()"
_INFO = {"params": int, "non_embedding_params": int, "flops_per_token": float, "device": str}


def check_scorable(train: dict, letters: str) -> None:
    """UsageError (one line) when the harness cannot score a promoted primitive's candidates at `train`."""
    from aira.train.sources import parse_task

    spec = parse_task(train["task"])
    if spec.kind != "mad":
        raise UsageError(f"--primitive {letters}: promoted primitives run on MAD proxies only (the harness "
                         f"scores their logits on secret rows; an lm proxy's inputs are its labels), got task "
                         f"{train['task']}")
    if train.get("curve_points"):
        raise UsageError(f"--primitive {letters}: a learning-curve score (curve_points) scores models during "
                         f"training, which the harness cannot do for a promoted primitive; use a proxy without it")


def hidden_seed(secret_dir: str | Path) -> Path:
    """The run's secret seed file (created on first use: a 0700 folder, a 0600 file); its path."""
    folder = Path(secret_dir)
    path = folder / HIDDEN_SEED
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        tmp = folder / f".{HIDDEN_SEED}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{secrets.randbits(52)}\n")
        os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------
# Inside the sandboxes: the mechanism's code runs here, and nothing here is trusted


def _register(spec: dict) -> None:
    from aira.tasks.promoted import Promotion, register_promoted

    for promo in spec["primitives"].values():
        register_promoted(Promotion(**promo))


def sandbox_train(spec_path: str = "job.json") -> None:
    """Training sandbox: train every seed x task, save weights/<seed>-<task>.pt, write result.json."""
    from aira.train.trainer import TrainConfig, train_for_export

    spec = json.loads(Path(spec_path).read_text())
    _register(spec)
    Path("weights").mkdir(exist_ok=True)
    out = {"seeds": {}}
    for s in spec["seeds"]:
        cfg = TrainConfig(pattern=spec["pattern"], seed=s, threads=spec["threads"], device=spec["device"],
                          progress=False, **spec["train"])
        r = train_for_export(cfg, lambda i, m, s=s: torch.save(m.state_dict(), f"weights/{s}-{i}.pt"),
                             log=lambda *_: None)
        out["seeds"][str(s)] = r["runs"]
        out.update({k: r[k] for k in _INFO})
    Path("result.json").write_text(json.dumps(out))


@torch.no_grad()
def sandbox_score(spec_path: str = "job.json") -> None:
    """Scoring sandbox: each model's outputs on inputs.pt (no labels) to outputs.pt."""
    from aira.models import build_model, get_preset
    from aira.train.trainer import TrainConfig, _autocast, _model_config, pick_device

    spec = json.loads(Path(spec_path).read_text())
    _register(spec)
    cfg = TrainConfig(pattern=spec["pattern"], threads=spec["threads"], device=spec["device"], **spec["train"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, preset = pick_device(cfg.device), get_preset(cfg.preset)
    inputs = torch.load("inputs.pt", weights_only=True)
    out = {}
    for s in spec["seeds"]:
        for i, task in enumerate(inputs["tasks"]):
            x_all, subset = task["x"], task["subset"].to(device)
            mcfg = _model_config(preset, cfg, int(task["vocab_size"]), x_all.shape[1])
            model = build_model(cfg.pattern, mcfg).to(device)
            model.load_state_dict(torch.load(f"weights/{s}-{i}.pt", weights_only=True, map_location=device))
            model.eval()
            parts = []
            for b in range(0, x_all.shape[0], EVAL_BATCH):
                with _autocast(device):
                    logits, _ = model(x_all[b:b + EVAL_BATCH].to(device))
                parts.append(reduce_logits(logits.float(), subset))
            out[f"{s}-{i}"] = {k: torch.cat([p[k] for p in parts]).cpu() for k in parts[0]}
    torch.save(out, "outputs.pt")


def reduce_logits(logits: torch.Tensor, subset: torch.Tensor) -> dict[str, torch.Tensor]:
    """What scoring needs of logits (..., V): the answer tokens' logits, the largest other logit and its
    token (-inf and 0 when every token is an answer token), and the log-sum-exp over the vocabulary."""
    other = logits.clone()
    other[..., subset] = -math.inf
    top, top_id = other.max(dim=-1)
    return {"subset": logits[..., subset], "other": top, "other_id": top_id, "lse": logits.logsumexp(dim=-1)}


# ---------------------------------------------------------------------------------------------------
# The harness side


def task_metrics(out: dict[str, torch.Tensor], y: torch.Tensor, subset: torch.Tensor, vocab_size: int) -> dict:
    """MadSource.evaluate's accuracy, loss, prob and loglik from `reduce_logits` outputs (rows, L, ...) and
    targets (rows, L), -100 where no answer; every target is in `subset`."""
    answer = y != -100
    total = int(answer.sum())
    sub, lse = out["subset"][answer], out["lse"][answer]
    col = torch.searchsorted(subset, y[answer])  # subset is sorted
    right = sub.gather(-1, col.unsqueeze(-1)).squeeze(-1)
    # argmax over the whole vocabulary, first index on a tie (torch.argmax's rule): the best answer token or
    # the best other one
    best_sub, best_col = sub.max(dim=-1)
    other, other_id = out["other"][answer], out["other_id"][answer]
    pred = torch.where((other > best_sub) | ((other == best_sub) & (other_id < subset[best_col])),
                       other_id, subset[best_col])
    nll = lse - right
    loss = float(nll.sum()) / max(total, 1)
    return {"accuracy": int((pred == y[answer]).sum()) / max(total, 1), "loss": loss,
            "prob": float(torch.exp(-nll).sum()) / max(total, 1), "loglik": 1.0 - loss / math.log(vocab_size)}


def audit_rows(x: torch.Tensor, vocab_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(originals, cuts, copies): a random subset of rows of x (n, L), each copied with its tokens after a
    random cut t (0 <= t <= L - 2) replaced by random tokens."""
    n, length = x.shape
    k = min(n, max(AUDIT_MIN, round(n * AUDIT_FRACTION)))
    rows = torch.randperm(n, generator=gen)[:k]
    cuts = torch.randint(0, length - 1, (k,), generator=gen)
    copies = x[rows].clone()
    noise = torch.randint(0, vocab_size, copies.shape, generator=gen)
    after = torch.arange(length).unsqueeze(0) > cuts.unsqueeze(1)
    copies[after] = noise[after]
    return rows, cuts, copies


def audit_changes(out: dict[str, torch.Tensor], rows, cuts, copies_at: torch.Tensor) -> list[float]:
    """Per audit copy: the largest change of its outputs at and before its cut from its original's, over
    max(1, the original's largest |output|) there (NaN: a change)."""
    changes = []
    for r, t, c in zip(rows.tolist(), cuts.tolist(), copies_at.tolist()):
        change = 0.0
        for key in ("subset", "other", "lse"):
            a, b = out[key][r, :t + 1], out[key][c, :t + 1]
            same_inf = torch.isinf(a) & (a == b)  # "other" is -inf when every token is an answer token
            d = (a - b).abs().masked_fill(same_inf, 0.0)
            scale = max(1.0, float(a.masked_fill(torch.isinf(a), 0.0).abs().max()))
            m = float(d.max()) / scale
            change = m if not m <= change else change  # keeps a NaN
        changes.append(change)
    return changes


def audit_failure(changes: list[float], tol: float) -> str | None:
    """None when every audit copy's change is within `tol`, else the breach in one line."""
    bad = [c for c in changes if not c <= tol]
    if not bad:
        return None
    worst = max((c if math.isfinite(c) else math.inf) for c in bad)
    return (f"contract breach: causality audit: on {len(bad)} of {len(changes)} audit rows the outputs at or "
            f"before the cut changed by up to {worst:.3g} x their scale when only later tokens changed (expected "
            f"<= {tol:g}: a Compose layer reads no later token, in training and in evaluation alike)")


def _typed_info(raw: dict) -> dict:
    out = {}
    for key, kind in _INFO.items():
        v = raw.get(key)
        if isinstance(v, kind) and not isinstance(v, bool) or (kind is float and type(v) is int):
            out[key] = v
    return out


def _load_tensors(path: Path, max_bytes: int):
    """A torch file the sandbox wrote, loaded without unpickling objects (weights_only); None if unreadable."""
    from aira.agents.sandbox import open_regular

    f = open_regular(path, max_bytes)
    if f is None:
        return None
    with f:
        try:
            return torch.load(f, weights_only=True, map_location="cpu")
        except Exception:  # noqa: BLE001 - whatever the sandbox wrote
            return None


def _is_state_dict(sd) -> bool:
    return isinstance(sd, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())


def evaluate_promoted(*, pattern: str, seed: int = 0, seeds: int = 1, threads: int | None = None,
                      device: str = "auto", train: dict, primitives: dict, secret_path: str,
                      timeout_s: float, mem_mb: int | None = None, masked: list[str] = (),
                      allow_unsafe: bool = False) -> dict:
    """The job function of a candidate with a promoted primitive (module docstring): train in one sandbox,
    predict in another, score here. Returns the result dict `evaluate_pattern` returns."""
    from aira.agents.sandbox import run_sandboxed
    from aira.data.mad import make_mad
    from aira.tasks.compose import _seed_mean
    from aira.train.sources import parse_task, split_mad_name
    from aira.train.trainer import TrainConfig, pick_device

    t0 = time.time()
    if threads is None and os.environ.get("AIRA_THREADS"):
        threads = int(os.environ["AIRA_THREADS"])
    cfg = TrainConfig(pattern=pattern, **train)
    check_scorable(train, "".join(primitives))
    hidden = int(Path(secret_path).read_text().strip())
    seed_list = list(range(seed, seed + seeds))
    spec = {"pattern": pattern, "seeds": seed_list, "threads": threads, "device": device, "train": train,
            "primitives": primitives}
    info: dict = {"metric_name": cfg.mad_score, "seeds": seeds, "cached": 0, "scored_by": "harness"}

    def fail(status: str, error: str) -> dict:
        return {"status": status, "metric": None, "selection_metric": None, "error": error.strip(), **info,
                "seconds": time.time() - t0}

    limits = {"mem_mb": mem_mb, "masked": list(masked), "allow_unsafe": allow_unsafe}
    root = Path(tempfile.mkdtemp(prefix="aira-promoted-"))
    os.chmod(root, 0o755)
    try:
        train_dir, score_dir = root / "train", root / "score"
        for d in (train_dir, score_dir):
            d.mkdir()
            (d / "job.json").write_text(json.dumps(spec))
        res = run_sandboxed([sys.executable, "-c", TRAINER], workdir=train_dir, timeout_s=timeout_s,
                            max_file_mb=1024, tail_lines=40, **limits)
        info["sandbox"], info["train_sandbox_seconds"] = res.violation or "isolated", round(res.seconds, 3)
        if res.status.value != "ok":
            status, why = res.failure()
            return fail(status, f"training in the sandbox failed ({why}):\n{res.stderr_tail[-1500:]}")
        from aira.agents.sandbox import open_regular

        f = open_regular(train_dir / "result.json", 1 << 20)
        try:
            raw = json.loads(f.read()) if f is not None else None
        except ValueError:
            raw = None
        finally:
            if f is not None:
                f.close()
        if not isinstance(raw, dict) or not isinstance(raw.get("seeds"), dict):
            return fail("crashed", "the training sandbox wrote no readable result.json")
        info.update(_typed_info(raw))
        # its claims can only hurt it: a run it says diverged is taken as diverged
        runs = [r for s in seed_list for r in (raw["seeds"].get(str(s)) or [{"status": "crashed"}])]
        for r in runs:
            if not isinstance(r, dict) or r.get("status") != "ok":
                status = r.get("status") if isinstance(r, dict) and r.get("status") == "diverged" else "crashed"
                error = r.get("error") if isinstance(r, dict) and isinstance(r.get("error"), str) else ""
                return fail(status, error[:2000] or "the training sandbox reported a failed training")
        def total(key: str) -> float:  # descriptive figures, as the sandbox reported them
            return sum(r[key] for r in runs if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool))

        info.update(steps=int(total("steps")) // seeds, tokens=int(total("tokens")) // seeds,
                    tokens_per_s=total("tokens") / max(total("train_seconds"), 1e-9),
                    peak_mem_mb=max((r["peak_mem_mb"] for r in runs if isinstance(r.get("peak_mem_mb"), float)),
                                    default=None))

        spec_task = parse_task(cfg.task)
        datas = []
        for name in spec_task.names:
            task, own = split_mad_name(name)
            datas.append(make_mad(task, own or cfg.mad_settings, seed=cfg.data_seed, hidden_seed=hidden))
        (score_dir / "weights").mkdir()
        for s in seed_list:
            for i in range(len(datas)):
                sd = _load_tensors(train_dir / "weights" / f"{s}-{i}.pt", MAX_WEIGHTS_BYTES)
                if not _is_state_dict(sd):
                    return fail("crashed", f"training saved no readable state dict weights/{s}-{i}.pt")
                torch.save(sd, score_dir / "weights" / f"{s}-{i}.pt")
        shutil.rmtree(train_dir, ignore_errors=True)

        # the scored rows (val, then the secret select rows) and the audit copies, in a secret order
        gen = torch.Generator().manual_seed(secrets.randbits(63))
        staged, tasks = [], []
        for d in datas:
            x = torch.cat([d.val_x, d.select_x])
            rows, cuts, copies = audit_rows(x, d.vocab_size, gen)
            x_all = torch.cat([x, copies])
            perm = torch.randperm(len(x_all), generator=gen)
            answers = torch.cat([t[t != -100] for t in (d.train_y, d.val_y, d.select_y)])
            subset = torch.unique(answers)  # sorted
            tasks.append({"x": x_all[perm].contiguous(), "subset": subset, "vocab_size": torch.tensor(d.vocab_size)})
            staged.append((d, perm, rows, cuts, subset))
        torch.save({"tasks": tasks}, score_dir / "inputs.pt")
        score_s = max(60.0, SCORE_TIMEOUT_FRACTION * timeout_s)
        res = run_sandboxed([sys.executable, "-c", SCORER], workdir=score_dir, timeout_s=score_s, max_file_mb=2048,
                            tail_lines=5, **limits)
        info["score_sandbox_seconds"] = round(res.seconds, 3)
        # its output is not shown: the code that wrote it has seen the secret rows
        if res.status.value != "ok":
            status, why = res.failure()
            return fail(status, f"the trained models failed on the evaluation inputs ({why}; limit {score_s:g} s); "
                                f"its output is not shown, since that run saw the secret rows")
        outputs = _load_tensors(score_dir / "outputs.pt", MAX_OUTPUT_BYTES)
        tol = AUDIT_TOL["cuda" if pick_device(device).type == "cuda" else "cpu"]
        per_seed = []
        for s in seed_list:
            val, select = [], []
            for i, (d, perm, rows, cuts, subset) in enumerate(staged):
                got = outputs.get(f"{s}-{i}") if isinstance(outputs, dict) else None
                out = _checked_outputs(got, len(perm), d.val_x.shape[1], len(subset))
                if out is None:
                    return fail("crashed", f"the scoring sandbox returned no well-formed outputs for seed {s}, "
                                           f"task {i} (expected subset, other, other_id and lse per row and position)")
                inv = torch.empty_like(perm)
                inv[perm] = torch.arange(len(perm))
                out = {k: v[inv] for k, v in out.items()}  # back to val, select, copies
                n_val, n_sel = len(d.val_x), len(d.select_x)
                val.append(task_metrics({k: v[:n_val] for k, v in out.items()}, d.val_y, subset, d.vocab_size))
                select.append(task_metrics({k: v[n_val:n_val + n_sel] for k, v in out.items()}, d.select_y, subset,
                                           d.vocab_size))
                if not all(math.isfinite(v) for m in (val[-1], select[-1]) for v in m.values()):
                    return fail("diverged", "non-finite validation metric")
                changes = audit_changes(out, rows, cuts, n_val + n_sel + torch.arange(len(rows)))
                info["audit_rows"] = info.get("audit_rows", 0) + len(changes)
                info["audit_max_change"] = max(info.get("audit_max_change", 0.0), *changes)
                why = audit_failure(changes, tol)
                if why is not None:
                    info["breach"] = "causality audit"
                    return fail("crashed", why)
            per_seed.append(_seed_result(cfg, spec_task, val, select, info, seed=s))
        return {**_seed_mean([(r, False) for r in per_seed], seeds), "seconds": time.time() - t0,
                **{k: info[k] for k in ("sandbox", "train_sandbox_seconds", "score_sandbox_seconds", "scored_by",
                                   "audit_rows", "audit_max_change")}}
    finally:
        from aira.agents.sandbox import drop_data

        for d in (root / "train", root / "score"):
            drop_data(d)
        shutil.rmtree(root, ignore_errors=True)


def _checked_outputs(got, rows: int, length: int, k: int) -> dict | None:
    shapes = {"subset": ((rows, length, k), torch.float32), "other": ((rows, length), torch.float32),
              "other_id": ((rows, length), torch.int64), "lse": ((rows, length), torch.float32)}
    if not isinstance(got, dict):
        return None
    for key, (shape, dtype) in shapes.items():
        v = got.get(key)
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape or v.dtype != dtype:
            return None
    return {key: got[key] for key in shapes}


def _seed_result(cfg, spec, val: list[dict], select: list[dict], info: dict, *, seed: int):
    """One seed's TrainResult (aira.train.trainer._assemble's shape) from harness-computed scores; the
    figures about training are the sandbox's descriptive report."""
    from aira.train.result import TaskScore, TrainResult

    name = cfg.mad_score
    per_task = {n: TaskScore(metric=v[name], select=s[name], **{k: v[k] for k in ("accuracy", "loss", "prob", "loglik")})
                for n, v, s in zip(spec.names, val, select)}
    num = {k: info.get(k) for k in ("params", "non_embedding_params", "flops_per_token", "tokens", "steps",
                                    "tokens_per_s", "peak_mem_mb")}
    return TrainResult(
        status="ok", error="", metric_name=name, lower_is_better=False,
        metric=sum(v[name] for v in val) / len(val), selection_metric=sum(s[name] for s in select) / len(select),
        val_loss=sum(v["loss"] for v in val) / len(val), pattern=cfg.pattern, preset=cfg.preset, task=cfg.task,
        seed=seed, flops=float((num["flops_per_token"] or 0.0) * (num["tokens"] or 0)), wall_s=0.0,
        compile_s=0.0, device=str(info.get("device")), dtype="fp32" if info.get("device") == "cpu" else "bf16",
        budget=cfg.budget, data="", per_task=per_task, **num)