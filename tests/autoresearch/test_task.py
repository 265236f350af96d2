"""The Task: what it accepts, how it rejects frozen-file edits and seed-only changes, the jobs it makes."""

from __future__ import annotations

import ast
import random

import pytest

from aira.errors import UsageError
from aira.tasks.autoresearch import AutoresearchTask
from aira.tasks.autoresearch.evaluate import FROZEN_FILES, frozen_hashes
from aira.tasks.autoresearch.presets import get_preset
from aira.tasks.registry import get_task


@pytest.fixture
def task() -> AutoresearchTask:
    return AutoresearchTask(preset="test")


def _with(task, code: str) -> dict:
    return {"files": {"train.py": code}}


def test_registered_and_baseline_is_the_reference(task):
    t = get_task("autoresearch", preset="test")
    assert isinstance(t, AutoresearchTask) and t.lower_is_better and t.proposal_kind == "file"
    ref = task.reference()
    assert set(ref["files"]) == {"train.py"}
    assert task.validate(ref) is None
    ast.parse(ref["files"]["train.py"])


def test_editing_a_frozen_file_is_rejected(task):
    code = task.baseline
    for name in FROZEN_FILES:
        err = task.validate({"files": {"train.py": code, name: "# changed"}})
        assert err == f"only train.py may be edited; {name} is frozen or not part of the task"
    assert "only train.py" in task.validate({"files": {"prepare.py": "x = 1"}})
    assert task.validate({"files": {"train.py": "  "}}) == "train.py is missing or empty"
    assert task.validate("code") == "the proposal must be {'files': {'train.py': code}}"


def test_syntax_error_is_rejected_with_the_line(task):
    err = task.validate(_with(task, task.baseline + "\ndef broken(:\n"))
    assert err.startswith("train.py does not parse: line ")


def test_seed_only_changes_are_rejected(task):
    base = task.baseline
    assert task.validate(_with(task, base)) is None
    reseeded = base.replace("run = load_run()", "run = load_run()\ntorch.manual_seed(1234)  # lucky")
    assert "only touches seed lines" in task.validate(_with(task, reseeded))
    constant = base.replace("ROPE_BASE = 10000.0", "ROPE_BASE = 10000.0\nSEED = 7")
    assert "only touches seed lines" in task.validate(_with(task, constant))
    # A real change that also touches a seed is fine, and so is proposing the same script again.
    real = reseeded.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")
    assert task.validate(_with(task, real)) is None
    assert task.validate(_with(task, base)) is None
    # ...and a seed change relative to that accepted script is caught too.
    assert "only touches seed lines" in task.validate(_with(task, real.replace("1234", "99")))


def test_make_job_kills_at_twice_the_budget_plus_allowance(task):
    job = task.make_job(task.reference(), seed=5, job_id="n0001")
    p = get_preset("test")
    assert job.fn == "aira.tasks.autoresearch.evaluate:evaluate_script"
    assert p.kill_after_s == 2 * p.time_budget_s + p.startup_allowance_s
    assert job.timeout_s > p.kill_after_s  # the harness's own limit leaves room to score the model
    assert job.kwargs["seed"] == 5 and job.kwargs["preset"] == "test"
    assert job.kwargs["frozen_sha"] == frozen_hashes()


def test_presets_and_bad_input():
    assert get_preset("gpu").time_budget_s == 300 and get_preset("gpu").eval_seq_len == 2048
    assert get_preset("cpu", time_budget_s=5).time_budget_s == 5
    with pytest.raises(UsageError, match="unknown autoresearch preset 'huge'"):
        AutoresearchTask(preset="huge")
    with pytest.raises(UsageError, match="bad time budget"):
        get_preset("cpu", time_budget_s=0)


def test_describe_states_the_rules_and_shows_literature(tmp_path):
    (tmp_path / "muon.md").write_text("Muon orthogonalises the momentum of matrix parameters.\n\n"
                                      "A warmdown schedule decays the learning rate at the end of training.")
    (tmp_path / "other.txt").write_text("Unrelated notes about cooking pasta.")
    task = AutoresearchTask(preset="test", literature=str(tmp_path))
    text = task.describe()
    assert "val_bpb" in text and "LOWER is better" in text and "only training tokens" in text
    assert "Retrieved from the literature for 'learning rate muon'" in text
    assert "[muon.md] Muon orthogonalises" in text and "pasta" not in text
    # The next prompt retrieves for the next topic of the edit library.
    assert "for 'learning rate embedding'" in task.describe()
    # The offline agent tries the edits the literature covers more often.
    assert "MATRIX_LR" in task.space().prefer


def test_offline_space_proposals_are_valid(task):
    space, rng = task.space(), random.Random(0)
    ref = task.reference()
    for _ in range(20):
        proposal, idea = space.mutate(ref, rng)
        assert task.validate(proposal) is None, idea
        assert proposal["files"]["train.py"] != ref["files"]["train.py"]


def test_llm_operators_see_the_literature_and_reply_with_train_py(tmp_path):
    from aira.agents.base import LLM, OperatorContext
    from aira.agents.operators import OPERATORS, render_prompt
    from aira.agents.types import Completion, Node, Status

    (tmp_path / "notes.md").write_text("Muon learning rate 0.03 worked better than 0.02 for small models.")
    task = AutoresearchTask(preset="test", literature=str(tmp_path))
    parent = Node(id="n0001", agent="a", operator="draft", proposal=task.reference(), status=Status.OK,
                  metric=1.23, idea="baseline")
    new_code = task.baseline.replace("MATRIX_LR = 0.02", "MATRIX_LR = 0.03")

    class OneReply(LLM):
        spec = "scripted"

        def complete(self, messages, **kw):
            self.prompt = messages[-1]["content"]
            return Completion(text=f"IDEA: raise the Muon LR\n```python\n{new_code}\n```", model="scripted")

    llm = OneReply()
    ctx = OperatorContext(task=task, llm=llm, parents=[parent], memory=[parent], rng=random.Random(0))
    assert "COMPLETE new contents of `train.py`" in render_prompt("improve", ctx)
    draft = OPERATORS["improve"](ctx)
    assert "[notes.md] Muon learning rate 0.03" in llm.prompt and "metric 1.23" in llm.prompt
    assert draft.idea == "raise the Muon LR" and not draft.error
    assert set(draft.proposal["files"]) == {"train.py"}
    assert draft.proposal["files"]["train.py"].strip() == new_code.strip()
    assert task.validate(draft.proposal) is None
