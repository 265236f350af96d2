"""Design feeds Compose: an LRA mechanism promoted to a Compose primitive (aira/tasks/promoted.py,
aira/models/mechanism.py): the contract (causality, caps), measured counts, bad input, and end to end
from an offline LRA design run through `aira design promote` to `aira compose run` and its report."""

import json

import pytest
import torch

from aira.agents.journal import Journal
from aira.agents.sandbox import isolation_mode
from aira.agents.types import Status
from aira.cli import main
from aira.errors import UsageError
from aira.models import build_model, count_params, flops_per_token, get_preset, registry
from aira.models.flops import counted_flops
from aira.models.primitives.attention import Attention
from aira.tasks.lra.mechanisms import path
from aira.tasks.promoted import check_promoted, load_promoted, register_promoted

CFG = get_preset("tiny").model.with_(max_seq_len=32, vocab_size=16)
# the contract check and a stub's counts run in a sandboxed child
needs_sandbox = pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: the sandbox cannot run")
BIDIRECTIONAL = '''
import torch.nn as nn


class Attention(nn.Module):
    """Mean over every position, later ones too."""

    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        return self.proj(x.mean(dim=1, keepdim=True).expand_as(x))
'''
OVERSIZED = '''
import torch
import torch.nn as nn


class Attention(nn.Module):
    """Causal but with a huge table."""

    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(d_model, 100 * d_model))
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x, key_padding_mask):
        return self.proj(x)
'''


def _promote(tmp_path, code: str, letter: str = "X"):
    f = tmp_path / f"{letter}.py"
    f.write_text(code)
    return register_promoted(load_promoted(letter, str(f)))


@pytest.mark.parametrize("name", ["softmax", "linear", "local", "longconv"])
def test_reference_mechanisms_pass_and_their_causal_output_is_the_prefix_output(name):
    cls = register_promoted(load_promoted("X", str(path(name))))
    failures, params, flops = check_promoted(cls, CFG)
    assert failures == [] and params > 0 and flops > 0
    # causal=True at position t is the bidirectional (LRA) mechanism run on the prefix up to t
    torch.manual_seed(0)
    causal = cls(CFG).eval()
    bidir = cls.mechanism(d_model=CFG.d_model, n_heads=CFG.n_heads, max_len=CFG.max_seq_len).eval()
    bidir.load_state_dict(causal.inner.state_dict())
    x = torch.randn(2, 20, CFG.d_model)
    with torch.no_grad():
        y = causal(x)
        for t in (0, 7, 19):
            ref = bidir(x[:, :t + 1], torch.zeros(2, t + 1, dtype=torch.bool))[:, t]
            torch.testing.assert_close(y[:, t], ref, atol=1e-5, rtol=1e-4)


def test_a_bidirectional_mechanism_fails_the_causality_check(tmp_path):
    failures, _, _ = check_promoted(_promote(tmp_path, BIDIRECTIONAL), CFG)
    assert len(failures) == 1 and failures[0].startswith(
        "causality: changing the tokens from position 1 on changed earlier outputs by up to ")
    # the library's Nystrom landmarks mix every position whatever causal says
    failures, _, _ = check_promoted(register_promoted(load_promoted("X", str(path("nystrom")))), CFG)
    assert failures[0].startswith("causality:")


def test_the_parameter_cap_is_four_attention_layers(tmp_path):
    failures, params, _ = check_promoted(_promote(tmp_path, OVERSIZED), CFG)
    D = CFG.d_model
    assert params == 100 * D * D + D * D + D
    cap = 4 * Attention.num_params(CFG)
    assert failures == [f"parameter cap: expected <= {cap:,} (4x an attention layer's), got {params:,}"]


def test_measured_counts_match_the_built_model_and_the_counter(tmp_path):
    cls = register_promoted(load_promoted("X", str(path("softmax"))))
    model = build_model("AXMX", CFG)
    assert count_params("AXMX", CFG) == model.num_params()
    D, L = CFG.d_model, 24
    # measured on meta tensors; the same counter on a real forward of the layer gives the same number
    real = counted_flops(cls(CFG.with_(max_seq_len=L)), torch.randn(1, L, D)) / L
    assert cls.flops_per_token(CFG, L) == pytest.approx(3 * real)
    # softmax: fused qkv and out projections with biases (2 x 4 D^2 per token) + the full L x L square
    assert real == pytest.approx(8 * D * D + 4 * D * L)
    # the pattern counts (aggregation, extrapolation, scaling) add the measured figure per X layer
    assert flops_per_token("XXM", CFG, L) - flops_per_token("XM", CFG, L) == pytest.approx(3 * real)


COMPOSE = ["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents", "greedy:offline",
           "--no-controls", "--budget", "2evals", "--noise-seeds", "0", "--executor", "inline", "--quiet"]


@pytest.mark.parametrize("spec, line", [
    ("A={ok}", ("aira: error: --primitive: A is the built-in attn; valid codes: upper-case letters other than "
                "ADEGMSW")),
    ("x={ok}", "aira: error: --primitive: the code must be one upper-case letter, got 'x'"),
    ("X", "aira: error: --primitive: expected X=FILE.py or X=DESIGN_RUN_DIR, got 'X'"),
    ("X={missing}", "aira: error: --primitive X={missing}: no such file or design run folder"),
    pytest.param("X={bidir}", ("aira: error: --primitive X={bidir}: fails the Compose contract: causality: "
                               "changing the tokens from position 1 on changed earlier outputs by up to"),
                 marks=needs_sandbox),
])
def test_bad_primitives_are_one_line_and_exit_2_before_the_run_folder(tmp_path, capsys, spec, line):
    bidir = tmp_path / "bidir.py"
    bidir.write_text(BIDIRECTIONAL)
    names = {"ok": str(path("softmax")), "missing": str(tmp_path / "nope.py"), "bidir": str(bidir)}
    out = tmp_path / "run"
    assert main([*COMPOSE, "--out", str(out), "--primitive", spec.format(**names)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line.format(**names))
    assert not out.exists()


def _run_folder(tmp_path, letter: str, source_path, pattern: str):
    """A Compose run folder as `compose run --primitive` leaves it: the copy in config.json, an aggregate."""
    promo = load_promoted(letter, str(source_path))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "compose", "task_kwargs": {
        "space": "attn-mlp", "primitives": {letter: promo.to_json()}}}))
    (run / "aggregate.json").write_text(json.dumps({"pattern": pattern}))
    return run, promo


@needs_sandbox
def test_extrapolating_a_run_with_x_to_1b_counts_what_the_built_model_holds(tmp_path, capsys):
    from aira.models import HybridLM, ModelConfig

    run, promo = _run_folder(tmp_path, "X", path("softmax"), "AXMXAXMM")
    register_promoted(load_promoted("X", str(path("linear"))))  # another X in this process: the run's must win
    capsys.readouterr()
    assert main(["compose", "extrapolate", str(run), "--target", "1B", "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["source_pattern"] == "AXMXAXMM" and registry.get("X").origin["sha256"] == promo.sha256
    cfg = ModelConfig(**e["model_config"])
    # this process holds X's counts, not its code: a model with X is built in sandboxes only
    assert registry.get("X").cls.stub
    with pytest.raises(UsageError, match=r"^primitive X \(promoted-x\) is a promoted mechanism, and its code runs "
                                         r"in sandboxes only: "):
        HybridLM(cfg, e["pattern"])
    register_promoted(promo)  # what a sandbox does
    with torch.device("meta"):  # the 1B model built, not counted: parameters by the tensors it holds
        model = HybridLM(cfg, e["pattern"])
    assert e["params"] == sum(p.numel() for p in model.parameters())
    x_layers = [b for c, b in zip(e["pattern"], model.blocks) if c == "X"]
    assert len(x_layers) == e["pattern"].count("X") > 0
    # FLOPs: the X layers' share is 3x the counter on one built layer's forward at 1B width and length
    L, D = cfg.max_seq_len, cfg.d_model
    one = counted_flops(x_layers[0].mixer, torch.empty(1, L, D, device="meta")) / L
    assert one == pytest.approx(8 * D * D + 4 * D * L)  # softmax: fused qkv, out (with biases), full L x L
    without_x = "".join(c for c in e["pattern"] if c != "X")
    assert e["flops_per_token"] - flops_per_token(without_x, cfg, L) == pytest.approx(3 * one * len(x_layers))


def test_an_edited_run_copy_is_refused(tmp_path, capsys):
    run, _ = _run_folder(tmp_path, "X", path("softmax"), "AXMX")
    cfg = json.loads((run / "config.json").read_text())
    cfg["task_kwargs"]["primitives"]["X"]["source"] += "\nprint('changed')\n"
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["compose", "extrapolate", str(run), "--target", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "aira: error: primitive X: the recorded source does not match its sha256 ")


@pytest.mark.slow
@needs_sandbox
def test_design_run_promoted_into_a_compose_search_end_to_end(tmp_path, capsys):
    design = tmp_path / "design"
    assert main(["design", "run", "lra-listops", "--preset", "smoke", "--agents", "greedy:offline", "--budget",
                 "3evals", "--noise-seeds", "0", "--executor", "inline", "--out", str(design), "--quiet"]) == 0
    mech = tmp_path / "mech.py"
    assert main(["design", "promote", str(design), "--as", "X", "--to", str(mech), "--proxy", "smoke"]) == 0
    origin = json.loads((tmp_path / "mech.py.origin.json").read_text())["origin"]
    with Journal(design, readonly=True) as j:
        node = next(n for n in j.nodes() if n.id == origin["node"])
    assert origin["kind"] == "design-run" and origin["metric"] == node.metric
    assert mech.read_text() == node.proposal["files"]["attention.py"]
    capsys.readouterr()

    out = tmp_path / "compose"
    # the local executor: candidates with X train and predict in sandboxes, the job's own process scores
    assert main(["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--primitive", f"X={mech}",
                 "--layers", "4", "--agents", "greedy:offline", "--no-controls", "--budget", "4evals",
                 "--noise-seeds", "0", "--workers", "1", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"promoted X: design run {design.resolve()} node {origin['node']} (lra-listops, val_accuracy" in err
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    with_x = [n for n in nodes if "X" in n.proposal]
    assert with_x and all(n.status == Status.OK for n in nodes)
    assert all(n.metrics["scored_by"] == "harness" and n.metrics["sandbox"] == "isolated"
               and n.metrics["score_sandbox_seconds"] > 0 for n in with_x)
    assert not any("scored_by" in n.metrics for n in nodes if "X" not in n.proposal)  # built-ins: as before
    secret = out / "secret" / "hidden_seed"
    assert secret.is_file() and (secret.stat().st_mode & 0o777) == 0o600
    assert (out / "primitives" / "X.py").read_text() == mech.read_text()
    meta = json.loads((out / "primitives" / "X.json").read_text())
    assert meta["origin"]["node"] == origin["node"] and meta["counts"]["params"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task_kwargs"]["primitives"]["X"]["sha256"] == meta["sha256"]
    assert cfg["task_kwargs"]["secret_dir"] == "secret"  # relative: a moved run keeps its secret rows

    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert '<section id="primitives">' in html and f"node {origin['node']} (lra-listops" in html

    # a resume uses the recorded copy, not the user's file, which has changed since; a moved run folder keeps
    # its secret seed
    mech.write_text("this is not python")
    seed = secret.read_text()
    moved = tmp_path / "moved"
    out.rename(moved)
    assert main(["runs", "resume", str(moved), "--budget", "6evals", "--quiet"]) == 0
    with Journal(moved, readonly=True) as j:
        assert len(j.nodes()) == 6 and all(n.status == Status.OK for n in j.nodes())
    assert (moved / "secret" / "hidden_seed").read_text() == seed and not out.exists()
