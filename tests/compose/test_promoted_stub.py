"""A promoted mechanism's code never runs in the harness (aira/tasks/promoted.py): the contract check and
the counts run in a sandboxed child, the harness registers a stub that holds counts and cannot be built,
and a run folder's primitives/X.json keeps what was measured."""

import builtins
import json

import pytest

from aira.agents.journal import Journal
from aira.agents.sandbox import isolation_mode
from aira.agents.types import Status
from aira.cli import main
from aira.errors import UsageError
from aira.models import build_model, count_params, get_preset, registry
from aira.tasks import promoted
from aira.tasks.lra.mechanisms import path
from aira.tasks.promoted import (
    check_promoted,
    contract_failure,
    load_promoted,
    prefetch_counts,
    register_promoted,
    register_stub,
    write_run_copy,
)
from tests.compose.test_promoted_primitives import BIDIRECTIONAL, OVERSIZED
from tests.compose.test_promoted_scoring import HONEST

pytestmark = pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: the sandbox cannot run")
CFG = get_preset("tiny").model.with_(max_seq_len=32, vocab_size=16)
# the honest causal mean, whose module body leaves a mark where it runs: a file in its working folder and a
# name in the interpreter's builtins
MARKED = '''
import builtins, os
builtins.__dict__.setdefault("AIRA_X_RAN", []).append(os.getcwd())
open(os.path.join(os.getcwd(), f"x-ran-{os.getpid()}"), "w").close()
''' + HONEST


@pytest.fixture
def fresh(monkeypatch):
    """A process that has measured nothing yet, and a count of the sandboxed children it starts."""
    monkeypatch.setattr(promoted, "_MEASURED", {})
    children = []
    real = promoted.measure_in_sandbox

    def counted(promos, requests=(), **kw):
        children.append([(c.d_model, L) for c, L in requests])
        return real(promos, requests, **kw)

    monkeypatch.setattr(promoted, "measure_in_sandbox", counted)
    return children


def _file(tmp_path, name: str, code: str) -> str:
    f = tmp_path / name
    f.write_text(code)
    return str(f)


def _marks(*folders) -> list[str]:
    return sorted(str(m) for d in folders for m in d.rglob("x-ran-*"))


@pytest.mark.parametrize("code", [BIDIRECTIONAL, OVERSIZED, "x = (\n", "raise RuntimeError('at import')\n"])
def test_the_sandboxed_contract_check_gives_the_in_process_checks_lines(tmp_path, code):
    promo = load_promoted("X", _file(tmp_path, "X.py", code))
    got = contract_failure(promo, CFG)
    try:
        failures = check_promoted(register_promoted(promo), CFG)[0]
    except UsageError as e:
        failures = [str(e)]
    assert got is not None and got == failures[0]


def test_the_harness_holds_counts_not_code(tmp_path, monkeypatch, fresh):
    monkeypatch.chdir(tmp_path)
    promo = load_promoted("X", _file(tmp_path, "X.py", MARKED))
    assert contract_failure(promo, CFG) is None
    stub = register_stub(promo)
    assert stub.__doc__.endswith(": A causal running mean.")  # read from the syntax tree
    assert stub.num_params(CFG) == CFG.d_model ** 2 + CFG.d_model and len(fresh) == 1  # the check's child
    wide = get_preset("small").model
    prefetch_counts([promo], [(wide, 64), (wide, wide.max_seq_len)])  # two widths / lengths: one child
    assert len(fresh) == 2
    counts = (stub.num_params(wide), stub.flops_per_token(wide, 64), count_params("AXMX", wide))
    assert len(fresh) == 2
    with pytest.raises(UsageError, match=r"^primitive X \(promoted-x\) is a promoted mechanism, and its code runs "
                                         r"in sandboxes only: "):
        build_model("AXMX", CFG)
    # nothing of the mechanism ran here
    assert _marks(tmp_path) == [] and "AIRA_X_RAN" not in builtins.__dict__
    # the counts are what the real class measures; importing it here is what leaves the marks
    try:
        real = register_promoted(promo)
        assert (real.num_params(wide), real.flops_per_token(wide, 64), count_params("AXMX", wide)) == counts
        assert len(_marks(tmp_path)) == 1 and builtins.AIRA_X_RAN == [str(tmp_path)]
    finally:
        builtins.__dict__.pop("AIRA_X_RAN", None)


def test_a_run_folder_records_what_was_measured(tmp_path, capsys, monkeypatch, fresh):
    promo = load_promoted("X", str(path("softmax")))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "compose", "task_kwargs": {
        "space": "attn-mlp", "primitives": {"X": promo.to_json()}}}))
    (run / "aggregate.json").write_text(json.dumps({"pattern": "AXMX"}))
    write_run_copy(run, [promo], {})
    capsys.readouterr()
    assert main(["compose", "extrapolate", str(run), "--target", "small", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    cfg = get_preset("small").model
    assert fresh == [[(cfg.d_model, cfg.max_seq_len)]]
    D, L = cfg.d_model, cfg.max_seq_len
    measured = json.loads((run / "primitives" / "X.json").read_text())["measured"]
    # softmax: fused qkv and out projections with biases; 3x (8 D^2 + 4 D L) training FLOPs per token
    assert measured == {"params": [[D, cfg.n_heads, L, 4 * D * D + 4 * D]],
                        "flops_per_token": [[D, cfg.n_heads, L, L, 3.0 * (8 * D * D + 4 * D * L)]]}
    # a later command in a fresh process (nothing in memory) reads the record and starts no child
    monkeypatch.setattr(promoted, "_MEASURED", {})
    assert main(["compose", "extrapolate", str(run), "--target", "small", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == first and len(fresh) == 1


@pytest.mark.slow
def test_no_command_runs_the_mechanism_in_the_harness(tmp_path, capsys, monkeypatch):
    harness = tmp_path / "harness"
    harness.mkdir()
    monkeypatch.chdir(harness)  # where this process and the local executor's workers would leave a mark
    mech = _file(tmp_path, "mech.py", MARKED)
    runs = {}
    for executor in ("inline", "local"):
        out = runs[executor] = tmp_path / executor
        assert main(["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--primitive", f"X={mech}",
                     "--layers", "4", "--agents", "greedy:offline", "--no-controls", "--budget", "4evals",
                     "--noise-seeds", "0", "--executor", executor, "--workers", "1", "--out", str(out),
                     "--quiet"]) == 0
        with Journal(out, readonly=True) as j:
            with_x = [n for n in j.nodes() if "X" in n.proposal]
        assert with_x and all(n.status == Status.OK and n.metrics["scored_by"] == "harness" for n in with_x)
        assert registry.get("X").cls.stub
    assert main(["compose", "extrapolate", str(runs["inline"]), "--target", "350M"]) == 0
    assert main(["models", "show", "--pattern", "AXMX", "--preset", "tiny", "--primitive", f"X={mech}"]) == 0
    assert "promoted X: file " in capsys.readouterr().out
    assert _marks(tmp_path) == [] and "AIRA_X_RAN" not in builtins.__dict__
