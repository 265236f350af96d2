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
2. Scoring sandbox (a fresh uid): the mechanism's source, the weights and the evaluation inputs, no label,
   all rows shuffled by a secret permutation. At every position of every row it returns the logits of the
   task's answer tokens (`subset`: every token that is an answer anywhere in the task), the largest other
   logit and its token, and the log-sum-exp over the whole vocabulary: what accuracy and cross-entropy
   need, a few MB where full logits would be hundreds. The harness refuses outputs that cannot come from
   logits (a contract breach, status crashed, no score): a non-finite value, an `other_id` that is an
   answer token or outside the vocabulary, a log-sum-exp below that of the logits returned (a probability
   above 1). The log-sum-exp is checked only against the returned logits, so a forged one can claim no mass
   on the other tokens: the score of a model that learnt never to predict a non-answer token.
3. The search score (what agents see) is on the public val rows, sent whole, with causality-audit copies:
   a secret random subset of them (AUDIT_FRACTION, at least AUDIT_MIN) copied with every token after a
   random cut replaced by random tokens. Outputs at and before the cut must equal the original row's
   (AUDIT_TOL x their scale); otherwise the evaluation is a contract breach (error "contract breach:
   causality audit ...") and gets no score. It catches a mechanism that passes the contract check but
   reads later tokens at evaluation time (in eval mode, in large batches). It does not stop code in the
   sandbox that pairs each row with its copies by their shared prefix and answers from the row's real
   future while answering every copy alike: that inflates the search score, which is why the final pick
   does not use it.
4. The selection score (hidden; the final pick ranks by it) is on select rows drawn from the run's secret
   seed (`hidden_seed`, a 0600 file in the run folder that no sandbox can read; same generator and settings
   as the proxy's select split, `aira.data.mad.make_mad(hidden_seed=...)`), and no select row is ever sent
   with its real future: per row, SELECT_POSITIONS of its answer positions t are drawn in secret, and one
   copy per t is sent, its tokens after t replaced by random tokens of the task's vocabulary; only position
   t of that copy is scored. A causal model's output there is its output on the whole row, so the score
   estimates the same accuracy over answer positions, from a sample: each scored position weighs its row's
   answer count / the positions drawn from it (an unbiased estimate of the plain path's micro-average;
   with every position drawn, the plain path's number). One position per row (SELECT_POSITIONS = 1): two
   copies of one row would leak, since the copy scored at the later position holds the real token after the
   earlier one, which the sandbox can find by the shared prefix. The price is sampling noise: the plain path
   scores ~2-10 answers per select row, this one 1.
5. The harness computes accuracy, loss, probability of the right answer and loglik with
   `aira.train.sources.MadSource.evaluate`'s formulas, per seed the trainer's result fields (parameter and
   FLOP counts from the harness's stub of the primitive, `aira.models.count_params` / `flops_per_token`;
   steps and tokens as the training sandbox reported them, finite numbers only), and the seed mean as
   `aira.tasks.compose` does.

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

AUDIT_FRACTION = 1 / 16  # of the val rows, per task
SELECT_POSITIONS = 1  # answer positions scored per secret select row (module docstring: two would leak)
LSE_TOL = 1e-4  # x max(1, |lse|): float32 rounding between the sandbox's log-sum-exp and the harness's
AUDIT_MIN = 8
AUDIT_TOL = {"cpu": 1e-4, "cuda": 3e-2}  # x max(1, |output|): batch composition changes float sums only
EVAL_BATCH = 128  # MadSource.evaluate's
MAX_WEIGHTS_BYTES = 4 << 30
MAX_OUTPUT_BYTES = 2 << 30
SCORE_TIMEOUT_FRACTION = 0.5  # the scoring sandbox's wall clock, of the training one's (at least 60 s)
SECRET_DIR = "secret"  # the run's secret folder, inside the run folder (config.json stores it relative)
HIDDEN_SEED = "hidden_seed"  # the file in the run's secret folder
MEM_MB = 16384  # RLIMIT_AS of a CPU proxy's sandboxes; none for a GPU's (CUDA reserves too much to cap)

TRAINER = "from aira.tasks.promoted_score import sandbox_train; sandbox_train()"
SCORER = "from aira.tasks.promoted_score import sandbox_score; sandbox_score()"


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
        out["device"] = r["device"]
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


def task_metrics(out: dict[str, torch.Tensor], y: torch.Tensor, subset: torch.Tensor, vocab_size: int,
                 weight: torch.Tensor | None = None) -> dict:
    """MadSource.evaluate's accuracy, loss, prob and loglik from `reduce_logits` outputs (rows, L, ...) and
    targets (rows, L), -100 where no answer; every target is in `subset`. `weight` (rows, L): each answer's
    weight in the means (default 1 each, MadSource.evaluate's plain means)."""
    answer = y != -100
    w = torch.ones(int(answer.sum()), dtype=torch.float64) if weight is None else weight[answer].double()
    total = float(w.sum()) or 1.0
    sub, lse = out["subset"][answer], out["lse"][answer]
    col = torch.searchsorted(subset, y[answer])  # subset is sorted
    right = sub.gather(-1, col.unsqueeze(-1)).squeeze(-1)
    # argmax over the whole vocabulary, first index on a tie (torch.argmax's rule): the best answer token or
    # the best other one
    best_sub, best_col = sub.max(dim=-1)
    other, other_id = out["other"][answer], out["other_id"][answer]
    pred = torch.where((other > best_sub) | ((other == best_sub) & (other_id < subset[best_col])),
                       other_id, subset[best_col])
    nll = (lse - right).double()
    loss = float((w * nll).sum()) / total
    return {"accuracy": float((w * (pred == y[answer])).sum()) / total, "loss": loss,
            "prob": float((w * torch.exp(-nll)).sum()) / total, "loglik": 1.0 - loss / math.log(vocab_size)}


def select_copies(x: torch.Tensor, y: torch.Tensor, vocab_size: int, gen: torch.Generator,
                  positions: int | None = SELECT_POSITIONS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(copies, labels, weight), what the selection score sends and scores (module docstring): per row of
    (x, y) (n, L), `positions` of its answer positions t drawn at random (None: every one), one copy per t
    with its tokens after t replaced by random tokens; labels all -100 but y[row, t] at t; weight at t the
    row's answer count / the positions drawn from it."""
    answer = y != -100
    count = answer.sum(dim=1)
    drawn = count if positions is None else count.clamp(max=positions)
    rank = torch.rand(x.shape, generator=gen).masked_fill(~answer, 2.0).argsort(dim=1).argsort(dim=1)
    rows, at = (answer & (rank < drawn.unsqueeze(1))).nonzero(as_tuple=True)
    copies = x[rows].clone()
    noise = torch.randint(0, vocab_size, copies.shape, generator=gen)
    after = torch.arange(x.shape[1]).unsqueeze(0) > at.unsqueeze(1)
    copies[after] = noise[after]
    index = torch.arange(len(rows))
    labels = torch.full_like(copies, -100)
    labels[index, at] = y[rows, at]
    weight = torch.zeros(copies.shape, dtype=torch.float64)
    weight[index, at] = (count.double() / drawn.clamp(min=1))[rows]
    return copies, labels, weight


def output_breach(out: dict[str, torch.Tensor], subset: torch.Tensor, vocab_size: int) -> str | None:
    """None when `reduce_logits`-shaped outputs could come from logits, else the breach in one line: a
    non-finite value, an other_id that is an answer token or outside [0, V), a log-sum-exp below that of the
    logits returned (nll < 0, a probability above 1)."""
    sub, other, other_id, lse = out["subset"], out["other"], out["other_id"], out["lse"]
    if not (torch.isfinite(sub).all() and torch.isfinite(lse).all()):
        return "contract breach: the scoring sandbox returned non-finite answer-token logits or log-sum-exp"
    if len(subset) == vocab_size:  # every token is an answer token: reduce_logits' other is -inf
        if not torch.isneginf(other).all():
            return "contract breach: the scoring sandbox returned an 'other' logit where every token is an answer"
        floor = sub.logsumexp(dim=-1)
    else:
        if not torch.isfinite(other).all():
            return "contract breach: the scoring sandbox returned a non-finite 'other' logit"
        if ((other_id < 0) | (other_id >= vocab_size) | torch.isin(other_id, subset)).any():
            return (f"contract breach: the scoring sandbox returned an other_id that is an answer token or outside "
                    f"the vocabulary [0, {vocab_size})")
        floor = torch.cat([sub, other.unsqueeze(-1)], dim=-1).logsumexp(dim=-1)
    short = floor - lse
    bad = short > LSE_TOL * floor.abs().clamp(min=1.0)
    if bad.any():
        return (f"contract breach: at {int(bad.sum())} positions the returned log-sum-exp is below that of the "
                f"logits returned with it (by up to {float(short.max()):.3g}): a probability above 1")
    return None


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


def _finite(v) -> bool:
    """A number the sandbox reported that the harness may use (json.loads reads NaN and Infinity)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


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
                      allow_unsafe: bool = False, measured: dict | None = None,
                      select_positions: int | None = SELECT_POSITIONS) -> dict:
    """The job function of a candidate with a promoted primitive (module docstring): train in one sandbox,
    predict in another, score here. `measured`: per letter the counts the task's stub holds
    (`aira.tasks.promoted.measured_json`; a miss is measured in a sandboxed child). `select_positions`:
    answer positions scored per select row (None: every one, the plain path's selection score; for tests).
    Returns the result dict `evaluate_pattern` returns."""
    from aira.agents.sandbox import open_regular, run_sandboxed
    from aira.data.mad import make_mad
    from aira.models import count_params, flops_per_token, get_preset
    from aira.tasks.compose import _seed_mean
    from aira.tasks.promoted import Promotion, register_stub
    from aira.train.sources import parse_task, split_mad_name
    from aira.train.trainer import TrainConfig, _model_config, pick_device

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

    # the counts: the harness's stub of each primitive, not the sandbox's report
    for letter, promo in primitives.items():
        register_stub(Promotion(**promo), measured=(measured or {}).get(letter), masked=masked)
    spec_task = parse_task(cfg.task)
    datas = []
    for name in spec_task.names:
        task, own = split_mad_name(name)
        datas.append(make_mad(task, own or cfg.mad_settings, seed=cfg.data_seed, hidden_seed=hidden))
    mcfg = _model_config(get_preset(cfg.preset), cfg, datas[0].vocab_size, datas[0].train_x.shape[1])
    info.update(params=count_params(pattern, mcfg), non_embedding_params=count_params(pattern, mcfg, non_embedding=True),
                flops_per_token=flops_per_token(pattern, mcfg, mcfg.max_seq_len))

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
        if isinstance(raw.get("device"), str):
            info["device"] = raw["device"][:64]
        # its claims can only hurt it: a run it says diverged is taken as diverged
        runs = [r for s in seed_list for r in (raw["seeds"].get(str(s)) or [{"status": "crashed"}])]
        for r in runs:
            if not isinstance(r, dict) or r.get("status") != "ok":
                status = r.get("status") if isinstance(r, dict) and r.get("status") == "diverged" else "crashed"
                error = r.get("error") if isinstance(r, dict) and isinstance(r.get("error"), str) else ""
                return fail(status, error[:2000] or "the training sandbox reported a failed training")

        def total(key: str) -> float:  # descriptive figures, as the sandbox reported them: finite ones only
            t = sum(r[key] for r in runs if _finite(r.get(key)))
            return t if math.isfinite(t) else 0.0

        info.update(steps=int(total("steps")) // seeds, tokens=int(total("tokens")) // seeds,
                    tokens_per_s=total("tokens") / max(total("train_seconds"), 1e-9),
                    peak_mem_mb=max((float(r["peak_mem_mb"]) for r in runs if _finite(r.get("peak_mem_mb"))),
                                    default=None))

        (score_dir / "weights").mkdir()
        for s in seed_list:
            for i in range(len(datas)):
                sd = _load_tensors(train_dir / "weights" / f"{s}-{i}.pt", MAX_WEIGHTS_BYTES)
                if not _is_state_dict(sd):
                    return fail("crashed", f"training saved no readable state dict weights/{s}-{i}.pt")
                torch.save(sd, score_dir / "weights" / f"{s}-{i}.pt")
        shutil.rmtree(train_dir, ignore_errors=True)

        # per task: the val rows, their audit copies and the select rows' copies, in a secret order
        gen = torch.Generator().manual_seed(secrets.randbits(63))
        staged, tasks = [], []
        for d in datas:
            rows, cuts, audit = audit_rows(d.val_x, d.vocab_size, gen)
            sel_x, sel_y, sel_w = select_copies(d.select_x, d.select_y, d.vocab_size, gen, select_positions)
            x_all = torch.cat([d.val_x, audit, sel_x])
            perm = torch.randperm(len(x_all), generator=gen)
            answers = torch.cat([t[t != -100] for t in (d.train_y, d.val_y, d.select_y)])
            subset = torch.unique(answers)  # sorted
            tasks.append({"x": x_all[perm].contiguous(), "subset": subset, "vocab_size": torch.tensor(d.vocab_size)})
            staged.append((d, perm, rows, cuts, sel_y, sel_w, subset))
        torch.save({"tasks": tasks}, score_dir / "inputs.pt")
        info["select_positions"] = sum(int((t[4] != -100).sum()) for t in staged)
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
            for i, (d, perm, rows, cuts, sel_y, sel_w, subset) in enumerate(staged):
                got = outputs.get(f"{s}-{i}") if isinstance(outputs, dict) else None
                out = _checked_outputs(got, len(perm), d.val_x.shape[1], len(subset))
                if out is None:
                    return fail("crashed", f"the scoring sandbox returned no well-formed outputs for seed {s}, "
                                           f"task {i} (expected subset, other, other_id and lse per row and position)")
                why = output_breach(out, subset, d.vocab_size)
                if why is not None:
                    info["breach"] = "outputs"
                    return fail("crashed", why)
                inv = torch.empty_like(perm)
                inv[perm] = torch.arange(len(perm))
                out = {k: v[inv] for k, v in out.items()}  # back to val, audit copies, select copies
                n_val, n_audit = len(d.val_x), len(rows)
                val.append(task_metrics({k: v[:n_val] for k, v in out.items()}, d.val_y, subset, d.vocab_size))
                select.append(task_metrics({k: v[n_val + n_audit:] for k, v in out.items()}, sel_y, subset,
                                           d.vocab_size, weight=sel_w))
                if not all(math.isfinite(v) for m in (val[-1], select[-1]) for v in m.values()):
                    return fail("diverged", "non-finite validation metric")
                changes = audit_changes(out, rows, cuts, n_val + torch.arange(n_audit))
                info["audit_rows"] = info.get("audit_rows", 0) + len(changes)
                info["audit_max_change"] = max(info.get("audit_max_change", 0.0), *changes)
                why = audit_failure(changes, tol)
                if why is not None:
                    info["breach"] = "causality audit"
                    return fail("crashed", why)
            per_seed.append(_seed_result(cfg, spec_task, val, select, info, seed=s))
        return {**_seed_mean([(r, False) for r in per_seed], seeds), "seconds": time.time() - t0,
                **{k: info[k] for k in ("sandbox", "train_sandbox_seconds", "score_sandbox_seconds", "scored_by",
                                   "audit_rows", "audit_max_change", "select_positions")}}
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
    """One seed's TrainResult (aira.train.trainer._assemble's shape) from harness-computed scores and counts;
    steps, tokens, speed and memory are the training sandbox's descriptive report."""
    from aira.train.result import MAD_SCORE_KEYS, TaskScore, TrainResult

    name = cfg.mad_score
    per_task = {n: TaskScore(metric=v[name], select=s[name], **{k: v[k] for k in MAD_SCORE_KEYS})
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