"""Task folders and the task registry, on folders fabricated here."""

import json
import textwrap

import pytest

from aira.agents.executors import make_executor
from aira.agents.executors.worker import run_job
from aira.agents.journal import Journal
from aira.agents.runfolder import RunConfig
from aira.tasks.runs import run
from aira.agents.stats import REFERENCE
from aira.agents.types import Status
from aira.errors import UsageError
from aira.tasks.folder import FolderTask
from aira.tasks.registry import get_task, list_tasks, register_task
from aira.tasks.synthetic import SyntheticPatternTask

# The frozen evaluator of the JSON task: a quadratic bowl with its optimum at lr=0.01, depth=6, act=gelu,
# plus seed noise, so the noise floor and the hidden split have something to measure.
JSON_EVAL = """
import math, random

def evaluate(proposal, seed, workdir):
    rng = random.Random(seed)
    loss = (math.log10(proposal["lr"]) + 2) ** 2 + (proposal["depth"] - 6) ** 2 / 10
    loss += 0.0 if proposal["act"] == "gelu" else 0.5
    return {"metric": loss + rng.gauss(0, 0.01), "selection_metric": loss + rng.gauss(0, 0.01)}
"""

FILE_EVAL = """
import os

def evaluate(proposal, seed, workdir):
    ns = {}
    exec(open(os.path.join(workdir, "solution.py")).read(), ns)
    return {"metric": float(ns["answer"]())}
"""


def make_json_task(root):
    d = root / "bowl"
    d.mkdir()
    (d / "task.json").write_text(
        json.dumps(
            {
                "name": "bowl",
                "metric": "loss",
                "lower_is_better": True,
                "reference_score": 0.001,
                "proposal_kind": "json",
                "timeout": "30s",
                "reference": {"lr": 0.1, "depth": 4, "act": "relu"},
            }
        )
    )
    (d / "schema.json").write_text(
        json.dumps(
            {
                "properties": {
                    "lr": {"type": "number", "minimum": 1e-4, "maximum": 1.0},
                    "depth": {"type": "integer", "minimum": 1, "maximum": 12},
                    "act": {"enum": ["relu", "gelu"]},
                },
                "required": ["lr", "depth", "act"],
                "additionalProperties": False,
            }
        )
    )
    (d / "description.md").write_text("Tune three hyperparameters of a tiny model.\n")
    (d / "evaluate.py").write_text(JSON_EVAL)
    return d


def make_file_task(root):
    d = root / "code"
    d.mkdir()
    (d / "task.json").write_text(
        json.dumps({"metric": "value", "proposal_kind": "file", "editable": "solution.py"})
    )
    (d / "solution.py").write_text("def answer():\n    return 41\n")
    (d / "evaluate.py").write_text(FILE_EVAL)
    return d


def test_json_folder_task(tmp_path):
    d = make_json_task(tmp_path)
    task = get_task(str(d))
    assert isinstance(task, FolderTask) and task.name == "bowl" and task.lower_is_better
    assert task.timeout_s == 30 and task.reference_score == 0.001
    text = task.describe()
    assert text.startswith("Tune three") and "lower is better" in text and '"act"' in text
    assert task.validate({"lr": 0.01, "depth": 6, "act": "gelu"}) is None
    assert task.validate({"lr": 0.01, "depth": 6}) == "missing keys: act"
    assert task.validate({"lr": 0.01, "depth": 6, "act": "tanh"}).startswith("act must be one of")
    assert task.validate({"lr": 2.0, "depth": 6, "act": "gelu"}) == "lr must be <= 1.0"
    assert task.validate({"lr": 0.01, "depth": 6.5, "act": "gelu"}) == "depth must be of type integer"
    assert task.validate({"lr": 0.01, "depth": True, "act": "gelu"}) == "depth must be of type integer"
    assert task.validate({"lr": 0.01, "depth": 6, "act": "gelu", "x": 1}) == "unknown keys: x"
    assert task.validate([1]) == "the proposal must be a JSON object"

    job = task.make_job({"lr": 0.01, "depth": 6, "act": "gelu"}, seed=0, job_id="j1")
    assert job.timeout_s == 30
    result = run_job(job)
    assert result.status == Status.OK and abs(result.metric) < 0.05
    bad = run_job(task.make_job(task.reference(), seed=0, job_id="j2"))
    assert bad.metric == pytest.approx(1 + 0.4 + 0.5, abs=0.05)  # (log10(0.1)+2)^2 + 4/10 + relu

    # the evaluator is frozen: editing it during a run fails the job instead of scoring with new code
    (d / "evaluate.py").write_text(JSON_EVAL.replace("0.5", "0.0"))
    changed = run_job(job)
    assert changed.status == Status.CRASHED and "frozen" in changed.error


def test_offline_run_on_a_json_folder_measures_the_noise_floor(tmp_path):
    d = make_json_task(tmp_path)
    cfg = RunConfig(
        task=str(d),
        agents=["greedy:offline"],
        budget="8evals",
        noise_seeds=3,
        out=str(tmp_path / "run"),
        quiet=True,
    )
    s = run(cfg, executor=make_executor("inline"))
    with Journal(cfg.out, readonly=True) as j:
        nodes = j.nodes()
    refs = [n for n in nodes if n.operator == REFERENCE]
    assert len(refs) == 3 and all(n.status == Status.OK for n in refs)
    assert s.noise_floor["mean"] == pytest.approx(1.9, abs=0.05) and 0 < s.noise_floor["std"] < 0.05
    assert s.evaluations == 8
    cands = [n for n in nodes if n.operator != REFERENCE]
    assert all(n.status == Status.OK and task_ok(n.proposal) for n in cands)
    assert s.agents[0]["normalised"] is not None


def task_ok(p):
    return set(p) == {"lr", "depth", "act"} and 1e-4 <= p["lr"] <= 1 and 1 <= p["depth"] <= 12


def test_file_folder_task(tmp_path):
    d = make_file_task(tmp_path)
    task = get_task(str(d))
    assert task.name == "code" and task.editable_file == "solution.py" and task.space() is None
    assert task.validate("def answer():\n    return 42\n") is None
    assert task.validate({"files": {"other.py": "x"}}) == "the proposal must be exactly one file, solution.py"
    assert task.validate({"files": {"solution.py": "  "}}) == "solution.py is empty"
    assert run_job(task.make_job(task.reference(), seed=0, job_id="r")).metric == 41
    r = run_job(task.make_job("def answer():\n    return 42\n", seed=0, job_id="c"))
    assert r.status == Status.OK and r.metric == 42
    r = run_job(task.make_job("def answer():\n    return float('nan')\n", seed=0, job_id="n"))
    assert r.status == Status.DIVERGED


def test_pattern_folder_task_has_a_search_space(tmp_path):
    d = tmp_path / "pat"
    d.mkdir()
    (d / "task.json").write_text(
        json.dumps({"proposal_kind": "pattern", "alphabet": "AM", "length": 4, "reference": "AMAM"})
    )
    (d / "evaluate.py").write_text("def evaluate(p, seed, wd):\n    return {'metric': p.count('A') / 4}\n")
    task = get_task(str(d))
    assert task.validate("AMXM") == "letters 'X' are not in the alphabet 'AM'"
    assert task.validate("AMA") == "the pattern has 3 letters, expected 4"
    import random

    rng = random.Random(0)
    p, _ = task.space().sample(rng)
    q, idea = task.space().mutate(p, rng)
    assert task.validate(p) is None and task.validate(q) is None
    assert sum(a != b for a, b in zip(p, q)) == 1 and "layer" in idea  # a point mutation names its layer


def test_bad_folders_and_registry(tmp_path):
    with pytest.raises(UsageError, match="no task folder"):
        get_task(str(tmp_path / "nothing"))
    d = tmp_path / "broken"
    d.mkdir()
    (d / "task.json").write_text("{not json")
    with pytest.raises(UsageError, match="bad .*task.json"):
        get_task(str(d))
    (d / "task.json").write_text(json.dumps({"proposal_kind": "video"}))
    with pytest.raises(UsageError, match="proposal_kind"):
        get_task(str(d))
    (d / "task.json").write_text(json.dumps({"proposal_kind": "json"}))
    with pytest.raises(UsageError, match="evaluate.py"):
        get_task(str(d))
    with pytest.raises(UsageError, match="unknown task 'nope'.*synthetic"):
        get_task("nope")
    assert "synthetic" in list_tasks()
    t = get_task("synthetic", target_seed=3, noise=0.1)
    assert isinstance(t, SyntheticPatternTask) and t.target_seed == 3
    with pytest.raises(UsageError, match="bad options for task 'synthetic'"):
        get_task("synthetic", colour="red")
    register_task("tiny-synthetic", lambda **kw: SyntheticPatternTask(length=4, **kw))
    assert get_task("tiny-synthetic").length == 4
    with pytest.raises(UsageError, match="task name"):
        register_task("a/b", SyntheticPatternTask)


def test_folder_evaluator_cannot_write_outside_its_workdir(tmp_path):
    d = tmp_path / "esc"
    d.mkdir()
    (d / "task.json").write_text(json.dumps({"proposal_kind": "file", "editable": "s.py"}))
    (d / "s.py").write_text("x = 1\n")
    (d / "evaluate.py").write_text(
        textwrap.dedent("""
        def evaluate(p, seed, wd):
            return {"metric": 1.0}
    """)
    )
    task = get_task(str(d))
    job = task.make_job({"files": {"../../evil.py": "x"}}, seed=0, job_id="e")
    assert run_job(job).status == Status.INVALID
    assert not (tmp_path / "evil.py").exists()
