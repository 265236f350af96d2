"""`aira compose verify`: parameter matching, the t interval, the verdict, and the whole loop on a tiny preset
(a smoke search, its aggregate, then the winner against Llama's alternation on Shakespeare's heldout split)."""

import json
import math

import pytest

from aira.agents.sandbox import isolation_mode
from aira.cli import main
from aira.compose.stats import t_quantile, welch_difference
from aira.compose.verify import Arm, VerifySettings, match_params, plan, summarize
from aira.errors import UsageError
from aira.models import get_preset

SMALL = get_preset("small").model
LLAMA_SMALL = 50_344_704  # (AM)x8 at d 768: 8 x 1,572,864 (A) + 8 x 4,718,592 (M) + 17 RMSNorms x 768


def test_t_quantile_agrees_with_closed_forms():
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-9)  # Cauchy: 12.7062
    # df = 2: t = (2p - 1) / sqrt(2 p (1 - p))
    assert t_quantile(0.975, 2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), rel=1e-9)
    assert t_quantile(0.975, 4) == pytest.approx(2.776445105, rel=1e-8)  # tables
    assert t_quantile(0.975, 1e6) == pytest.approx(1.959966, rel=1e-5)   # the normal's
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    with pytest.raises(UsageError, match="0 < p < 1"):
        t_quantile(1.0, 3)


def test_welch_difference_by_hand():
    a, b = [1.0, 1.2, 1.1], [1.5, 1.4, 1.7]
    w = welch_difference(a, b)
    # variances of the means 0.01/3 and 0.07/9; df = (va + vb)^2 / (va^2/2 + vb^2/2) = 3.4483
    assert w["difference"] == pytest.approx(-0.433333, abs=1e-6)
    assert w["df"] == pytest.approx(3.448276, abs=1e-6)
    assert w["ci"] == pytest.approx([-0.7454217, -0.1212449], abs=1e-6)  # scipy's ttest_ind(equal_var=False)
    assert welch_difference([2.0, 2.0], [1.0, 1.0])["ci"] == [1.0, 1.0]
    with pytest.raises(UsageError, match="at least 2 values a side"):
        welch_difference([1.0], [1.0, 2.0])


def test_matching_changes_the_ffn_width_of_a_bigger_pattern():
    llama = match_params("llama", "AMAMAMAMAMAMAMAM", SMALL, LLAMA_SMALL)
    assert (llama.ffn_dim, llama.non_embedding_params, llama.matched) == (2048, LLAMA_SMALL, False)
    # Composer's stacked composite at 16 layers: 6 A + 10 M = 56.6M (+12.5%); the FFN width that matches is
    # (50,344,704 - 6 x 1,572,864 - 13,056) / (10 x 3 x 768) = 1774.9 -> 1776, a multiple of 8
    arm = match_params("composer-stacked", "AAMMMMAAMMMMAAMM", SMALL, LLAMA_SMALL)
    assert (arm.before, arm.ffn_dim, arm.non_embedding_params) == (56_636_160, 1776, 50_369_280)
    assert abs(arm.non_embedding_params / LLAMA_SMALL - 1) <= 0.02 and arm.matched
    # a hybrid: the Mamba-2 layers stay, the MLP layers give way
    assert match_params("nemotron", "SMSMSMSMAMSMSMSM", SMALL, LLAMA_SMALL).ffn_dim == 1256


def test_matching_refuses_what_it_cannot_match():
    # 16 x 1,572,864 + 13,056
    with pytest.raises(UsageError, match=r"AAAAAAAAAAAAAAAA: 25,178,880 non-embedding parameters, -50.0% .*no MLP"):
        match_params("winner", "A" * 16, SMALL, LLAMA_SMALL)
    # 15 A and one M: (50,344,704 - 15 x 1,572,864 - 13,056) / (3 x 768) = 11,605 wide, 5.67x the preset's 2048
    with pytest.raises(UsageError, match=r"FFN width 11605 \(5.67x the preset's 2048\), outside 0.25-4x"):
        match_params("winner", "A" * 15 + "M", SMALL, LLAMA_SMALL)


def test_verdict_needs_twice_the_spread_and_the_minimum_gain():
    arms = [Arm("winner", "AAMM", 8, 8, 1, 1, "winner"), Arm("llama", "AMAM", 8, 8, 1, 1, "reference"),
            Arm("other", "MMAA", 8, 8, 1, 1)]
    scores = {"winner": [1.00, 1.01, 1.02], "llama": [1.10, 1.11, 1.12], "other": [1.09, 1.11, 1.13]}
    rows, comps = summarize(arms, scores, min_gain=0.02)
    assert [r["mean"] for r in rows] == pytest.approx([1.01, 1.11, 1.11])
    win, other = comps
    assert win["difference"] == pytest.approx(-0.10) and win["spread"] == pytest.approx(0.01)
    assert (win["verdict"], win["exceeds_noise"], win["ci_excludes_zero"]) == ("better", True, True)
    assert other["verdict"] == "within noise" and not other["ci_excludes_zero"]
    # beyond 2x the spread but below the minimum gain: within noise
    assert summarize(arms, scores, min_gain=0.2)[1][0]["verdict"] == "within noise"
    # one seed of the reference: no interval, no verdict
    assert summarize(arms, {**scores, "llama": [1.1]}, min_gain=0.0)[1][0]["verdict"] == "incomplete"


def test_extrapolation_target_uses_the_runs_stretched_pattern(tmp_path):
    from aira.compose.extrapolate import extrapolate

    (tmp_path / "aggregate.json").write_text(json.dumps({"pattern": "AAMMAMMMAMMMAAMM"}))
    p = plan(tmp_path, VerifySettings(target="1B", baselines=("llama", "composer-stacked")))
    winner, llama, stacked = p.arms
    assert winner.pattern == extrapolate("AAMMAMMMAMMMAAMM", "1B", "stretch").pattern
    assert p.winner_source == "aggregate.json stretched to 1B"
    assert llama.pattern == "AM" * 16 and p.reference_params == 973_146_112  # Llama 3.2 1B without embeddings
    assert len(stacked.pattern) == 27 and stacked.pattern.count("A") == 9  # Composer's 2A+4M at 1B
    assert all(abs(a.non_embedding_params / p.reference_params - 1) <= 0.02 for a in p.arms)
    assert p.budget == f"{20 * 973_146_112} tokens" and p.notes == []


def test_a_time_budget_is_accepted_with_a_warning(tmp_path):
    p = plan(tmp_path, VerifySettings(target="tiny", budget="30s", baselines=("llama",)), pattern="AAMM")
    assert p.notes and p.notes[0].startswith("budget 30s is a time")


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1"], "--seeds must be at least 2"),
    (["--baselines", "llama,gpt"], "unknown baseline 'gpt'"),
    (["--target", "7B"], "unknown preset '7B'"),
    (["--budget", "lots"], "cannot parse budget 'lots'"),
    (["--min-gain", "-0.1"], "--min-gain must be >= 0"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--executor", "ray"], "--executor must be local or inline"),
    (["--pattern", "AXM"], "AXM"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    args = ["compose", "verify", str(run), "--target", "tiny", "--budget", "2048 tokens"]
    if "--pattern" not in argv:
        args += ["--pattern", "AAMM"]
    assert main(args + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("aira: error: ") and message in err and err.count("\n") == 1
    assert not (run / "verify.json").exists()


def test_a_run_without_an_aggregate_is_refused(tmp_path, capsys):
    assert main(["compose", "verify", str(tmp_path), "--target", "tiny"]) == 2
    assert f"{tmp_path} has no aggregate.json; run `aira compose aggregate" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "run"
    argv = ["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents",
            "greedy:offline", "--no-controls", "--budget", "6evals", "--executor", "inline", "--out", str(out),
            "--quiet", "--cache", str(out.parent / "cache")]
    assert main(argv) == 0
    # pin the aggregate's first two layers to A, M, so the winner has an MLP layer to match its size with
    # whatever this tiny search found (an all-attention winner is refused, as test_matching_refuses... checks)
    assert main(["compose", "aggregate", str(out), "--prefix", "AM"]) == 0
    return out


def test_verify_end_to_end_on_a_tiny_preset(smoke_run, capsys):
    """Search -> aggregate -> verify on CPU: 2 patterns x 2 seeds, 2,048 tokens each, then the report."""
    agg = json.loads((smoke_run / "aggregate.json").read_text())["pattern"]
    argv = ["compose", "verify", str(smoke_run), "--target", "tiny", "--budget", "2048 tokens", "--seeds", "2",
            "--baselines", "llama", "--eval-tokens", "1024", "--executor", "inline", "--min-gain", "0",
            "--cache", str(smoke_run.parent / "cache")]
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr()
    v = json.loads((smoke_run / "verify.json").read_text())
    assert v["complete"] and v["winner"] == {"pattern": agg, "source": "aggregate.json"}
    winner, llama = v["arms"]
    assert llama["pattern"] == "AMAM" and winner["pattern"] == agg
    for arm in v["arms"]:
        assert abs(arm["relative_to_reference"]) <= 0.02
        assert sorted(arm["seeds"]) == ["0", "1"] and all(s["tokens"] == 2048 for s in arm["seeds"].values())
        bpb = [arm["seeds"][k]["heldout_bpb"] for k in ("0", "1")]
        assert all(0 < x < 9 for x in bpb) and arm["heldout_bpb"] == pytest.approx(sum(bpb) / 2)
    (c,) = v["comparisons"]
    w = [winner["seeds"][k]["heldout_bpb"] for k in ("0", "1")]
    r = [llama["seeds"][k]["heldout_bpb"] for k in ("0", "1")]
    assert c["difference"] == pytest.approx(winner["heldout_bpb"] - llama["heldout_bpb"])
    assert c["ci95"] == pytest.approx(welch_difference(w, r)["ci"])
    beyond = abs(c["difference"]) > 2 * c["spread"]
    assert c["verdict"] == (("better" if c["difference"] < 0 else "worse") if beyond else "within noise")
    assert v["verdict"] == c["verdict"] and f"winner {agg} (aggregate.json): {c['verdict']}" in printed.out
    assert "llama               AMAM" in printed.err
    if agg == "AMAM":  # the search may pick Llama's alternation itself: then they are one training
        assert c["difference"] == 0.0
    # a second verification trains nothing: every seed comes from the cache, with the same scores
    assert main(argv) == 0
    v2 = json.loads((smoke_run / "verify.json").read_text())
    assert all(s["cached"] for a in v2["arms"] for s in a["seeds"].values())
    assert [a["heldout_bpb"] for a in v2["arms"]] == [a["heldout_bpb"] for a in v["arms"]]
    # the run's report shows it
    assert main(["report", str(smoke_run)]) == 0
    html = (smoke_run / "report.html").read_text()
    assert 'id="verify"' in html and f'data-name="winner" data-verdict="{c["verdict"]}"' in html


def _promoted_run(tmp_path):
    """A Compose run folder that promoted the library's softmax attention as X (as `compose run --primitive`
    records it in config.json)."""
    from aira.tasks.lra.mechanisms import path
    from aira.tasks.promoted import load_promoted

    promo = load_promoted("X", str(path("softmax")))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "compose", "task_kwargs": {
        "space": "attn-mlp", "primitives": {"X": promo.to_json()}}}))
    return run, promo


VERIFY_X = ["--pattern", "AXMM", "--target", "tiny", "--budget", "2048 tokens", "--seeds", "2", "--baselines",
            "llama", "--eval-tokens", "1024", "--min-gain", "0"]


@pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: X's counts are measured in a sandbox")
def test_a_winner_with_a_promoted_primitive_runs_sandboxed_with_its_source(tmp_path, monkeypatch, capsys):
    import aira.agents.jobs

    run, promo = _promoted_run(tmp_path)
    # the inline executor runs jobs in this process and ignores Job.sandbox: refused before any work
    assert main(["compose", "verify", str(run), *VERIFY_X, "--executor", "inline"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "aira: error: --executor inline runs jobs in this process, unsandboxed; the winner uses the promoted "
        "primitive(s) X, whose code runs in sandboxes only: use --executor local"]
    assert not (run / "verify.json").exists()
    seen = []
    monkeypatch.setattr(aira.agents.jobs, "run_jobs", lambda executor, jobs, on_result: seen.extend(jobs))
    assert main(["compose", "verify", str(run), *VERIFY_X, "--executor", "local", "--workers", "1",
                 "--cache", str(tmp_path / "cache")]) == 0
    by_pattern = {}
    for job, ((pattern, _), seed) in seen:
        by_pattern.setdefault(pattern, []).append((job, seed))
    assert sorted(by_pattern) == ["AMAM", "AXMM"]
    for job, _ in by_pattern["AXMM"]:  # the mechanism's code: in the sandbox, with its source, no shared cache
        assert job.sandbox and job.kwargs["cache_dir"] is None
        assert job.kwargs["primitives"] == {"X": promo.to_json()}
        assert job.fn == "aira.tasks.promoted:evaluate_in_sandbox"
    for job, _ in by_pattern["AMAM"]:  # built-ins only: as before
        assert not job.sandbox and "primitives" not in job.kwargs
        assert job.kwargs["cache_dir"] == str(tmp_path / "cache")


@pytest.mark.slow
def test_verify_trains_a_promoted_winner_in_the_sandbox(tmp_path, capsys):
    run, _ = _promoted_run(tmp_path)
    assert main(["compose", "verify", str(run), *VERIFY_X, "--executor", "local", "--workers", "2",
                 "--cache", str(tmp_path / "cache")]) == 0
    v = json.loads((run / "verify.json").read_text())
    assert v["complete"] and [a["pattern"] for a in v["arms"]] == ["AXMM", "AMAM"]
    assert all(0 < s["heldout_bpb"] < 9 and s["tokens"] == 2048 and not s["cached"]
               for a in v["arms"] for s in a["seeds"].values())
    # the X arm's bpb came from the process that ran the mechanism: verify.json and the table say so
    assert v["scored_in_sandbox"] == ["winner"]
    assert "note: the bpb of winner (with a promoted mechanism) was computed in the sandbox" in capsys.readouterr().out
    jobs = run / "verify-jobs"  # sandboxed jobs get a workdir; the others a job.json beside their log
    assert sorted(p.name for p in jobs.glob("*.work")) == ["verify-00-s0.work", "verify-00-s1.work"]
    assert sorted(p.name for p in jobs.glob("*.job.json")) == ["verify-01-s0.job.json", "verify-01-s1.job.json"]
