"""Design feeds Compose: an LRA mechanism checked against a Compose layer's contract and promoted.

`--primitive X=SOURCE` (`aira compose run`, `aira models show`): SOURCE is an `attention.py` with LRA's
contract (a user's file, or one `aira design promote` wrote, whose `.origin.json` beside it names the
design run), or an `aira design run lra-...` folder, whose best node (by the hidden test score) that
passes the contract below is taken. `load_promoted` reads it into a `Promotion` (letter, source, sha256,
origin); `ComposeTask(primitives=...)` registers it (aira/models/mechanism.py); `check_promoted` is the
contract, run before any run folder is written:

  construction with causal=True at the proxy's width, heads and length; output shape (B, L, D); finite
  output; causality: changing the tokens from position t on (t = 1 and L/2) leaves the outputs before t
  unchanged (to CAUSAL_TOL x the output scale); parameters <= CAP_FACTOR x an attention layer's (A) of
  the same width; forward FLOPs per token at the proxy's length <= CAP_FACTOR x A's as the same counter
  sees them (the full L x L square); forward + backward with finite gradients.

A failure is one line naming the check. The Compose agents never write mechanism code: they pick patterns.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aira.errors import UsageError

CAP_FACTOR = 4.0
CAUSAL_TOL = 1e-4
ORIGIN_SUFFIX = ".origin.json"  # beside a file `aira design promote` wrote: where it came from


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
    from aira.agents.orchestrator import read_config
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


def register_promoted(promo: Promotion):
    """Register a Promotion as its letter's primitive; the class."""
    from aira.models.mechanism import promoted_primitive, sha256

    if sha256(promo.source) != promo.sha256:
        raise UsageError(f"primitive {promo.letter}: the recorded source does not match its sha256 "
                         f"{promo.sha256[:12]}...: the run folder's copy was edited")
    return promoted_primitive(promo.letter, promo.name, promo.source, promo.origin)


def contract_failure(promo: Promotion, cfg) -> str | None:
    """None when the Promotion passes the contract at ModelConfig `cfg`, else the first failure, one line."""
    try:
        cls = register_promoted(promo)
    except UsageError as e:
        return str(e)
    failures, _, _ = check_promoted(cls, cfg)
    return failures[0] if failures else None


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
    this process so that its patterns parse and count; {} for a folder that is not a Compose run or has none.
    A copy whose source no longer matches its sha256 is refused (UsageError)."""
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
    for promo in promos.values():
        register_promoted(promo)
    return promos


def write_run_copy(out: Path, promos: list[Promotion], counts: dict[str, dict]) -> None:
    """RUN/primitives/X.py (the source as promoted) and X.json (sha256, origin, measured counts)."""
    from aira.fileio import write_atomic

    folder = out / "primitives"
    folder.mkdir(parents=True, exist_ok=True)
    for p in promos:
        write_atomic(folder / f"{p.letter}.py", p.source)
        meta = {"letter": p.letter, "name": p.name, "sha256": p.sha256, "origin": p.origin,
                "counts": counts.get(p.letter)}
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
