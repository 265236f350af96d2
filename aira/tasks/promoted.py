"""Design feeds Compose: an LRA mechanism checked against a Compose layer's contract and promoted.

`--primitive X=SOURCE` (`aira compose run`, `aira models show`): SOURCE is an `attention.py` with LRA's
contract (a user's file, or one `aira design promote` wrote, whose `.origin.json` beside it names the
design run), or an `aira design run lra-...` folder, whose best node (by the hidden test score) that
passes the contract below is taken. `load_promoted` reads it into a `Promotion` (letter, source, sha256,
origin). Its source runs in sandboxed children only (`sandbox_measure`, run by `measure_in_sandbox`): the
harness registers a stub (`register_stub`, aira/models/mechanism.py) whose counts a child measured, kept
per sha256 for the process and in a run folder's primitives/X.json; `register_promoted` executes the
source, for sandboxes and `aira export`. `check_promoted` is the contract, run in such a child by
`contract_failure` before any run folder is written:

  construction with causal=True at the proxy's width, heads and length; output shape (B, L, D); finite
  output; causality: changing the tokens from position t on (t = 1 and L/2) leaves the outputs before t
  unchanged (to CAUSAL_TOL x the output scale); parameters <= CAP_FACTOR x an attention layer's (A) of
  the same width; forward FLOPs per token at the proxy's length <= CAP_FACTOR x A's as the same counter
  sees them (the full L x L square); forward + backward with finite gradients.

A failure is one line naming the check. The Compose agents never write mechanism code: they pick patterns.
The check's verdict and the counts come from the process that ran the mechanism, so a mechanism written to
forge them can (as it could when they ran in aira's own process). Its candidates' selection score, which
final picks rank by, it cannot raise: the harness computes it on secret rows sent without their future
(aira/tasks/promoted_score.py); the search score, on public val rows sent whole, a mechanism built to
cheat can inflate past the causality audit.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aira.errors import UsageError

CAP_FACTOR = 4.0
CAUSAL_TOL = 1e-4
ORIGIN_SUFFIX = ".origin.json"  # beside a file `aira design promote` wrote: where it came from
MEASURER = "from aira.tasks.promoted import sandbox_measure; sandbox_measure()"
MEASURE_TIMEOUT_S = 600.0  # a check at the proxy's width takes seconds; a CPU fallback at 3B width, longer
MEASURE_MEM_MB = 16384
_MEASURED: dict[str, dict] = {}  # sha256 -> params_key / flops_key -> count, as sandboxed children measured


@dataclass(frozen=True)
class Promotion:
    letter: str
    source: str
    sha256: str
    origin: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"promoted-{self.letter.lower()}"

    def to_json(self) -> dict:
        return asdict(self)


def check_letter(letter: str) -> str:
    from aira.models import registry

    if len(letter) != 1 or not letter.isalpha() or not letter.isupper():
        raise UsageError(f"--primitive: the code must be one upper-case letter, got {letter!r}")
    taken = next((i for i in registry.all_primitives() if i.code == letter and i.origin is None), None)
    if taken is not None:
        raise UsageError(f"--primitive: {letter} is the built-in {taken.name}; valid codes: upper-case letters "
                         f"other than {''.join(i.code for i in registry.all_primitives() if i.origin is None)}")
    return letter


def parse_spec(spec: str) -> tuple[str, str]:
    """'X=path' -> ('X', 'path'); UsageError (one line) otherwise."""
    letter, eq, where = spec.partition("=")
    if not eq or not where.strip():
        raise UsageError(f"--primitive: expected X=FILE.py or X=DESIGN_RUN_DIR, got {spec!r}")
    return check_letter(letter.strip()), where.strip()


def best_design_node(run_dir: Path) -> list[tuple[dict, str]]:
    """(origin, source) of a design run's OK nodes with an attention.py, best hidden test score first."""
    from aira.agents.journal import Journal
    from aira.agents.runfolder import read_config
    from aira.agents.types import Status

    config = read_config(run_dir)
    if not str(config["task"]).startswith("lra-"):
        raise UsageError(f"{run_dir} is a run of {config['task']}, not an `aira design run lra-...` run")
    with Journal(run_dir, readonly=True) as j:
        nodes = j.nodes()
    ok = [n for n in nodes if n.status == Status.OK and n.metric is not None and isinstance(n.proposal, dict)
          and isinstance(n.proposal.get("files", {}).get("attention.py"), str)]
    ok.sort(key=lambda n: (-(n.selection_metric if n.selection_metric is not None else n.metric), n.id))
    return [({"kind": "design-run", "run": str(run_dir.resolve()), "node": n.id, "task": config["task"],
              "operator": n.operator, "idea": n.idea, "metric_name": "val_accuracy", "metric": n.metric,
              "selection_metric": n.selection_metric}, n.proposal["files"]["attention.py"]) for n in ok]


def node_source(run_dir: Path, node: str) -> tuple[dict, str]:
    for origin, source in best_design_node(run_dir):
        if origin["node"] == node:
            return origin, source
    raise UsageError(f"--node {node}: no finished OK node with that id and an attention.py in {run_dir}")


def load_promoted(letter: str, where: str, *, check=None) -> Promotion:
    """The Promotion of a file or a design run folder. For a folder, `check(promotion)` (None or one line)
    picks its best node that passes; without `check`, the best node."""
    from aira.models.mechanism import sha256

    path = Path(where).expanduser()
    if path.is_dir():
        candidates = best_design_node(path)
        if not candidates:
            raise UsageError(f"--primitive {letter}={where}: the design run has no finished OK node")
        why = None
        for origin, source in candidates:
            promo = Promotion(letter, source, sha256(source), origin)
            why = check(promo) if check else None
            if why is None:
                return promo
        raise UsageError(f"--primitive {letter}={where}: none of its {len(candidates)} OK nodes passes the "
                         f"Compose contract; the best one's failure: {why}")
    if not path.is_file():
        raise UsageError(f"--primitive {letter}={where}: no such file or design run folder")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--primitive {letter}={where}: cannot read it ({e})") from None
    digest = sha256(source)
    origin = {"kind": "file", "path": str(path.resolve())}
    # where it came from, recorded beside it by `aira design promote` (FILE.origin.json) or in a Compose run's
    # primitives/ (X.json); believed only while the file is unchanged
    for sidecar in (path.with_name(path.name + ORIGIN_SUFFIX), path.with_suffix(".json")):
        try:
            recorded = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        except (OSError, ValueError):
            recorded = {}
        if isinstance(recorded, dict) and recorded.get("sha256") == digest and isinstance(recorded.get("origin"), dict):
            origin = {**recorded["origin"], "file": str(path.resolve())}
            break
    return Promotion(letter, source, digest, origin)


def proxy_model_config(proxy):
    """The ModelConfig a proxy trains (its preset at its sequence length), for the contract's sizes."""
    from aira.models import get_preset

    preset = get_preset(proxy.preset)
    return preset.model.with_(max_seq_len=proxy.setting("seq_len") or preset.seq_len)


def check_promoted(cls, cfg, *, length: int = 64, seed: int = 0) -> tuple[list[str], int, float]:
    """(failures, parameters, forward FLOPs per token at cfg.max_seq_len) of the promoted primitive `cls`."""
    import torch

    from aira.models.flops import counted_flops
    from aira.models.primitives.attention import Attention

    L_f = cfg.max_seq_len
    sig = f"Attention(d_model={cfg.d_model}, n_heads={cfg.n_heads}, max_len={L_f}, causal=True)"
    torch.manual_seed(seed)
    try:
        module = cls(cfg)
    except Exception as e:  # noqa: BLE001 - the mechanism's code
        return [f"construction failed: {sig} raised {type(e).__name__}: {e}"], 0, 0.0
    params = sum(p.numel() for p in module.parameters())
    failures = []
    cap_p = CAP_FACTOR * Attention.num_params(cfg)
    if params > cap_p:
        failures.append(f"parameter cap: expected <= {cap_p:,.0f} ({CAP_FACTOR:g}x an attention layer's), "
                        f"got {params:,}")
    L = min(L_f, length)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, L, cfg.d_model, generator=gen)
    module.eval()

    def forward(inp):
        torch.manual_seed(seed)  # stochastic mechanisms draw the same noise in paired calls
        return module(inp)

    with torch.no_grad():
        try:
            out = forward(x)
        except Exception as e:  # noqa: BLE001
            return failures + [f"forward raised {type(e).__name__}: {e} (input {tuple(x.shape)})"], params, 0.0
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            return failures + [f"output shape: expected {tuple(x.shape)} (B, L, D), got {got}"], params, 0.0
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            return failures + [f"non-finite output: expected all finite, got {bad} NaN/inf of {out.numel()}"], \
                params, 0.0
        scale = max(1.0, float(out.abs().max()))
        for t in sorted({1, L // 2} - {0, L}):
            x2 = x.clone()
            x2[:, t:] = 10.0 * torch.randn(2, L - t, cfg.d_model, generator=gen)
            leak = float((forward(x2)[:, :t] - out[:, :t]).abs().max())
            if not math.isfinite(leak) or leak > CAUSAL_TOL * scale:
                failures.append(f"causality: changing the tokens from position {t} on changed earlier outputs "
                                f"by up to {leak:.3g} (expected 0: a Compose layer reads no later token; the "
                                f"mechanism must honour causal=True)")
                break
    try:
        flops = counted_flops(module, torch.randn(1, L_f, cfg.d_model, generator=gen)) / L_f
    except Exception as e:  # noqa: BLE001
        return failures + [f"forward at length {L_f} raised {type(e).__name__}: {e}"], params, 0.0
    cap_f = CAP_FACTOR * Attention.flops_per_token(cfg, L_f, full_square=True) / 3.0
    if flops > cap_f:
        failures.append(f"FLOP cap: expected <= {cap_f:.3g} forward FLOPs per token at length {L_f} "
                        f"({CAP_FACTOR:g}x an attention layer's), got {flops:.3g}")
    module.train()
    xg = x.clone().requires_grad_(True)
    try:
        forward(xg).float().square().mean().backward()
    except Exception as e:  # noqa: BLE001
        return failures + [f"backward raised {type(e).__name__}: {e}"], params, flops
    if xg.grad is None or not torch.isfinite(xg.grad).all():
        failures.append("backward: expected a finite gradient for the input, got "
                        f"{'none' if xg.grad is None else 'NaN/inf'}")
    elif any(p.grad is not None and not torch.isfinite(p.grad).all() for p in module.parameters()):
        failures.append("backward: expected finite gradients, got NaN/inf in a parameter")
    return failures, params, flops


def _check_sha(promo: Promotion) -> None:
    from aira.models.mechanism import sha256

    if sha256(promo.source) != promo.sha256:
        raise UsageError(f"primitive {promo.letter}: the recorded source does not match its sha256 "
                         f"{promo.sha256[:12]}...: the run folder's copy was edited")


def register_promoted(promo: Promotion):
    """Register a Promotion as its letter's primitive, executing its source; the class. For the sandboxes
    that build X's models, and `aira export`; the harness registers `register_stub`."""
    from aira.models.mechanism import promoted_primitive

    _check_sha(promo)
    return promoted_primitive(promo.letter, promo.name, promo.source, promo.origin)


def register_stub(promo: Promotion, *, record: Path | None = None, masked=(), measured: dict | None = None):
    """Register a Promotion as its letter's primitive without executing its source (a stub: counts, no
    module); the class. Counts come from what this process measured of the same source, then `measured`
    (`measured_json`'s table, which another harness process measured: a job's), then `record` (a run
    folder's primitives/X.json, when it holds this sha256), else a sandboxed child (`masked` paths hidden
    from it), whose figures are added to `record`."""
    from aira.models.mechanism import class_doc, stub_primitive

    _check_sha(promo)
    memo = _MEASURED.setdefault(promo.sha256, {})
    if measured is not None:
        memo.update(_counts_from_json(measured))
    if record is not None:
        memo.update(_read_record(record, promo.sha256))

    def measure(cfg, seq_len: int) -> None:
        _measure_into(memo, promo, [(cfg, seq_len)], masked)
        if record is not None and _read_record(record, promo.sha256) != memo:
            _write_record(record, memo)

    return stub_primitive(promo.letter, promo.name, promo.sha256, promo.origin, class_doc(promo.source), memo,
                          measure)


def prefetch_counts(promos, requests, *, masked=()) -> None:
    """Measure every (ModelConfig, seq_len) of `requests` that this process lacks for `promos`, in one
    sandboxed child: a command that needs several widths or lengths pays one interpreter start."""
    from aira.models.mechanism import flops_key, params_key

    todo = [p for p in promos if any(k not in _MEASURED.get(p.sha256, {})
                                     for c, L in requests for k in (params_key(c), flops_key(c, L)))]
    for promo in todo:  # one child each: a failure names its mechanism
        _measure_into(_MEASURED.setdefault(promo.sha256, {}), promo, requests, masked)


def _measure_into(memo: dict, promo: Promotion, requests, masked) -> None:
    from aira.models.mechanism import flops_key, params_key

    got = measure_in_sandbox([promo], requests, masked=masked)[promo.letter]
    memo.update(got["counts"])
    missing = [(c, L) for c, L in requests if params_key(c) not in memo or flops_key(c, L) not in memo]
    if missing:
        c, L = missing[0]
        why = got["error"] or next(iter(got["failures"] or []), None) or "no figures came back"
        raise UsageError(f"primitive {promo.letter}: measuring it at width {c.d_model}, {c.n_heads} heads, length "
                         f"{L} in the sandbox failed: {why}")


def measured_json(promo: Promotion) -> dict:
    """Every count this process holds of the source, as JSON (what `register_stub(measured=)` reads)."""
    return _counts_to_json(_MEASURED.get(promo.sha256, {}))


def _counts_to_json(memo: dict) -> dict:
    return {"params": sorted([*k[1:], v] for k, v in memo.items() if k[0] == "params"),
            "flops_per_token": sorted([*k[1:], v] for k, v in memo.items() if k[0] == "flops")}


def _counts_from_json(raw) -> dict:
    """The well-formed entries of `_counts_to_json`'s shape (a record, or a sandboxed child's result)."""
    def ok(row, n):
        return (isinstance(row, list) and len(row) == n + 1
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in row[:n])
                and isinstance(row[n], (int, float)) and not isinstance(row[n], bool)
                and math.isfinite(row[n]) and row[n] >= 0)

    raw = raw if isinstance(raw, dict) else {}
    out = {}
    for row in raw.get("params") or []:
        if ok(row, 3) and isinstance(row[3], int):
            out[("params", *row[:3])] = row[3]
    for row in raw.get("flops_per_token") or []:
        if ok(row, 4):
            out[("flops", *row[:4])] = float(row[4])
    return out


def _read_record(path: Path, digest: str) -> dict:
    """The counts a run folder recorded for this source (primitives/X.json): the `measured` table, and the
    proxy-width `counts` every such file holds."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or meta.get("sha256") != digest:
        return {}
    out = {}
    c = meta.get("counts")
    if isinstance(c, dict):
        d, h, L = c.get("d_model"), c.get("n_heads"), c.get("seq_len")
        out = _counts_from_json({"params": [[d, h, L, c.get("params")]],
                                 "flops_per_token": [[d, h, L, L, c.get("flops_per_token")]]})
    return {**out, **_counts_from_json(meta.get("measured"))}


def _write_record(path: Path, memo: dict) -> None:
    from aira.fileio import write_atomic

    meta = json.loads(Path(path).read_text())
    meta["measured"] = _counts_to_json(memo)
    write_atomic(Path(path), json.dumps(meta, indent=1) + "\n")


def measure_in_sandbox(promos, requests=(), *, check=None, masked=()) -> dict[str, dict]:
    """Run `sandbox_measure` on `promos` in a sandboxed child: per letter {"failures": the contract check's
    lines at ModelConfig `check` (None without), "counts": params_key / flops_key -> count for each
    (ModelConfig, seq_len) of `requests`, "error": one line or None}. The child's figures are untrusted
    numbers; only well-formed ones are kept."""
    from aira.agents.sandbox import drop_data, open_regular, run_sandboxed

    spec = {"primitives": {p.letter: p.to_json() for p in promos}, "check": asdict(check) if check else None,
            "counts": [[asdict(c), int(L)] for c, L in requests]}
    root = Path(tempfile.mkdtemp(prefix="aira-measure-"))
    os.chmod(root, 0o755)
    work = root / "work"
    try:
        work.mkdir()
        (work / "job.json").write_text(json.dumps(spec))
        res = run_sandboxed([sys.executable, "-c", MEASURER], workdir=work, timeout_s=MEASURE_TIMEOUT_S,
                            mem_mb=MEASURE_MEM_MB, masked=[m for m in map(str, masked) if os.path.exists(m)],
                            extra_env={"CUDA_VISIBLE_DEVICES": ""}, tail_lines=5)
        raw = None
        f = open_regular(work / "result.json", 16 << 20)
        if f is not None:
            with f:
                try:
                    raw = json.loads(f.read())
                except ValueError:
                    raw = None
    finally:
        drop_data(work)
        shutil.rmtree(root, ignore_errors=True)
    failed = None
    if res.status.value != "ok" or not isinstance(raw, dict):
        _, why = res.failure()
        last = next((ln.strip() for ln in reversed(res.stderr_tail.splitlines()) if ln.strip()), "")
        failed = f"the sandboxed check failed ({why}){f': {last[:300]}' if last else ''}"
    out = {}
    for p in promos:
        entry = raw.get(p.letter) if isinstance(raw, dict) else None
        entry = entry if isinstance(entry, dict) and failed is None else {}
        failures = entry.get("failures")
        ok_failures = isinstance(failures, list) and all(isinstance(x, str) for x in failures)
        error = entry.get("error") if isinstance(entry.get("error"), str) else None
        if check is not None and not ok_failures:
            failures, error = [failed or "the sandboxed check returned no verdict"], error or failed
        out[p.letter] = {"failures": [x[:1000] for x in failures] if check is not None else None,
                         "counts": _counts_from_json(entry), "error": (error or failed or None)}
    return out


def sandbox_measure(spec_path: str = "job.json") -> None:
    """In the sandbox: each mechanism imported, checked against the contract (when asked) and counted at
    every requested width and length; result.json."""
    import torch

    from aira.models.config import ModelConfig
    from aira.models.mechanism import flops_key, params_key

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    out = {}
    for letter, p in spec["primitives"].items():
        entry = out[letter] = {}
        try:
            cls = register_promoted(Promotion(**p))
        except UsageError as e:
            entry.update(failures=[str(e)], error=str(e))
            continue
        if spec["check"] is not None:
            entry["failures"] = check_promoted(cls, ModelConfig(**spec["check"]))[0]
            if entry["failures"]:
                continue
        memo = {}
        for c, L in spec["counts"]:
            cfg = ModelConfig(**c)
            try:
                memo[params_key(cfg)] = cls.num_params(cfg)
                memo[flops_key(cfg, L)] = cls.flops_per_token(cfg, L)
            except Exception as e:  # noqa: BLE001 - the mechanism's code
                entry["error"] = f"{type(e).__name__}: {e}"
                break
        entry.update(_counts_to_json(memo))
    Path("result.json").write_text(json.dumps(out))


def contract_failure(promo: Promotion, cfg, also=()) -> str | None:
    """None when the Promotion passes the contract at ModelConfig `cfg`, else the first failure, one line.
    Checked in a sandboxed child, which also measures the counts at `cfg` (and at each (ModelConfig,
    seq_len) of `also`, where it can) for this process's stubs."""
    from aira.models.mechanism import flops_key, params_key

    try:
        _check_sha(promo)
    except UsageError as e:
        return str(e)
    got = measure_in_sandbox([promo], [(cfg, cfg.max_seq_len), *also], check=cfg)[promo.letter]
    if got["failures"]:
        return got["failures"][0]
    if params_key(cfg) not in got["counts"] or flops_key(cfg, cfg.max_seq_len) not in got["counts"]:
        return f"counting it at the proxy's width failed: {got['error'] or 'no figures came back'}"
    _MEASURED.setdefault(promo.sha256, {}).update(got["counts"])
    return None


def measured_counts(cls, cfg) -> dict:
    """What the run folder records of a promoted primitive at the proxy's config: per-layer parameters and
    training FLOPs per token, and an attention layer's beside them."""
    from aira.models.primitives.attention import Attention

    L = cfg.max_seq_len
    return {"d_model": cfg.d_model, "n_heads": cfg.n_heads, "seq_len": L,
            "params": cls.num_params(cfg), "flops_per_token": cls.flops_per_token(cfg, L),
            "attention_params": Attention.num_params(cfg), "attention_flops_per_token": Attention.flops_per_token(cfg, L)}


def run_promotions(run_dir: Path) -> dict[str, Promotion]:
    """The promoted primitives a Compose run recorded (config.json `task_kwargs.primitives`), registered in
    this process as stubs (their counts read from and added to the run's primitives/X.json) so that its
    patterns parse and count; {} for a folder that is not a Compose run or has none. A copy whose source no
    longer matches its sha256 is refused (UsageError)."""
    from aira.tasks.promoted_score import SECRET_DIR

    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    recorded = (config.get("task_kwargs") or {}).get("primitives") if isinstance(config, dict) else None
    if config.get("task") != "compose" or not isinstance(recorded, dict):
        return {}
    try:
        promos = {letter: Promotion(**p) for letter, p in recorded.items()}
    except TypeError as e:
        raise UsageError(f"{run_dir}/config.json: a malformed promoted primitive ({e})") from None
    folder = Path(run_dir) / "primitives"
    for letter, promo in promos.items():
        record = folder / f"{letter}.json"
        register_stub(promo, record=record if record.is_file() else None, masked=[Path(run_dir) / SECRET_DIR])
    return promos


def write_run_copy(out: Path, promos: list[Promotion], counts: dict[str, dict]) -> None:
    """RUN/primitives/X.py (the source as promoted) and X.json (sha256, origin, the counts at the proxy's
    width, and `measured`: every count this process holds of the source, which later commands extend)."""
    from aira.fileio import write_atomic

    folder = out / "primitives"
    folder.mkdir(parents=True, exist_ok=True)
    for p in promos:
        write_atomic(folder / f"{p.letter}.py", p.source)
        meta = {"letter": p.letter, "name": p.name, "sha256": p.sha256, "origin": p.origin,
                "counts": counts.get(p.letter), "measured": _counts_to_json(_MEASURED.get(p.sha256, {}))}
        write_atomic(folder / f"{p.letter}.json", json.dumps(meta, indent=1) + "\n")


def write_promoted(promo: Promotion, to: Path) -> None:
    """The mechanism's source as `to`, and `to.origin.json` (sha256, origin) beside it."""
    from aira.fileio import write_atomic

    to.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(to, promo.source)
    write_atomic(to.with_name(to.name + ORIGIN_SUFFIX),
                 json.dumps({"sha256": promo.sha256, "origin": promo.origin}, indent=1) + "\n")


def evaluate_in_sandbox(*, primitives: dict, **kwargs) -> dict:
    """A job function for `aira compose verify`'s arms that use promoted primitives (run as Job(sandbox=True)):
    registers them in this sandboxed process, then `evaluate_pattern`. Its scores come from the process
    that ran the mechanism's code, so they are marked `scored_by: sandbox`: on byte-level text the inputs
    are the labels, so the harness-side scoring of a search (aira/tasks/promoted_score.py) does not apply."""
    from aira.tasks.compose import evaluate_pattern

    for promo in primitives.values():
        register_promoted(Promotion(**promo))
    return {**evaluate_pattern(**kwargs), "scored_by": "sandbox"}
