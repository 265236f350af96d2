"""`aira design eval|run lra-<task>`: bad input in one line, and a tiny offline run end to end in which a
hostile attention.py fails cleanly and the search goes on."""

import json

import pytest

from aira.agents.journal import Journal
from aira.agents.types import Status
from aira.cli import main
from aira.report import write_report
from aira.tasks.lra import task as lra_task
from aira.tasks.lra.mechanisms import path
from aira.tasks.lra.offline import MechanismSpace

SECRET = "sk-lra-test-0123456789"
HOSTILE = '''\
import os, socket
leak = os.environ.get("AIRA_LRA_TEST_API_KEY", "no key in sight")
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    net = "reached the network"
except OSError as e:
    net = f"network blocked: {e}"
raise RuntimeError(f"hostile: {leak}; {net}")


class Attention:  # never reached: the import fails first
    pass
'''


@pytest.mark.parametrize("argv, message", [
    (["--file", "/nonexistent/attention.py"], "--file /nonexistent/attention.py does not exist"),
    (["--preset", "huge"], "unknown LRA preset 'huge'; valid: smoke, cpu, gpu"),
    (["--time-budget", "30"], "--time-budget is not an LRA option"),
])
def test_eval_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(["design", "eval", "lra-listops", "--preset", "smoke", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_eval_rejects_settings_in_the_fixed_setting(tmp_path, capsys):
    f = tmp_path / "attention.py"
    f.write_text(path("softmax").read_text() + "\nSETTINGS = {'d_model': 16}\n")
    assert main(["design", "eval", "lra-text", "--preset", "smoke", "--file", str(f)]) == 2
    assert "fixed setting takes no SETTINGS" in capsys.readouterr().err


@pytest.mark.slow
def test_design_run_offline_end_to_end_with_a_hostile_draft(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRA_LRA_TEST_API_KEY", SECRET)

    class HostileFirst(MechanismSpace):  # the first draft of the run is hostile, the rest are offline moves
        drafted = 0

        def sample(self, rng):
            HostileFirst.drafted += 1
            return ({"files": {"attention.py": HOSTILE}}, "hostile") if HostileFirst.drafted == 1 \
                else super().sample(rng)

    monkeypatch.setattr(lra_task, "MechanismSpace", HostileFirst)
    out = tmp_path / "run"
    rc = main(["design", "run", "lra-listops", "--preset", "smoke", "--agents", "greedy:offline",
               "--budget", "1evals", "--noise-seeds", "1", "--executor", "inline", "--out", str(out),
               "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "leaderboard" in printed and "STAND-IN" in printed

    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    ref, hostile, *rest = nodes
    assert ref.operator == "reference" and ref.status == Status.OK
    # scored on the run's secret held-out rows (tests/lra/test_lra_task.py checks that on the public rows
    # the harness's score is the in-process evaluator's)
    assert 0.0 <= ref.metric <= 1.0 and ref.selection_metric is not None
    assert hostile.status.failed and hostile.status == Status.INVALID
    assert "hostile: no key in sight" in hostile.error and "Network is unreachable" in hostile.error
    assert all(SECRET not in json.dumps(n.to_dict()) for n in nodes)
    assert any(n.status == Status.OK and n.operator != "reference" for n in rest), "the run did not go on"
    report = (out / "lra_report.md").read_text()
    assert "## lra-listops (fixed setting, preset smoke)" in report and "STAND-IN" in report
    assert "| Mega | 63.14 |" in report and "not compared" in report
    assert "```python" in report and "class Attention" in report
    html = write_report(out).read_text()  # the HTML report embeds the section
    assert '<section id="lra">' in html and "STAND-IN: not LRA" in html


def test_eval_scores_a_users_file_through_the_sandbox(tmp_path, capsys):
    n = 300  # the claimed predictions' count: it does not matter
    # Predicts class 0 everywhere and claims a perfect score; the harness scores the predictions.
    claim = json.dumps({"status": "ok", "metric": 1.0, "test_predictions": [0] * n})
    f = tmp_path / "mine.py"
    f.write_text(f"import os\nprint('hello from mine', flush=True)\nopen('result.json', 'w').write({claim!r})\n"
                 f"os._exit(0)\n\nclass Attention:\n    pass\n")
    assert main(["design", "eval", "lra-listops", "--preset", "smoke", "--file", str(f)]) == 1
    captured = capsys.readouterr()
    assert "  attention.py | hello from mine" in captured.err  # the sandboxed run's output, relayed
    lines = dict(ln.split(": ", 1) for ln in captured.out.splitlines() if ": " in ln)
    # its claim counts for nothing: the scores come from its trained weights, which it did not save
    assert lines["status"] == "crashed" and "saved no readable model.pt" in lines["error"]
    assert "val_accuracy" not in lines and lines["note"].startswith("STAND-IN")


def test_design_run_folder_checks_come_before_anything_runs(tmp_path, capsys):
    """The start/resume flow (aira.tasks.runs.start_or_resume): --resume needs a run, a used folder needs
    --resume, and a resumed run keeps its stored task."""
    from aira.agents.runfolder import RunConfig

    out = tmp_path / "run"
    assert main(["design", "run", "lra-listops", "--out", str(out), "--resume"]) == 2
    assert f"--resume: no run at {out}" in capsys.readouterr().err
    out.mkdir()
    config = RunConfig(task="lra-text", task_kwargs={"preset": "smoke"}, agents=["greedy:offline"], out=str(out))
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    (out / Journal.FILENAME).write_bytes(b"")
    assert main(["design", "run", "lra-listops", "--out", str(out)]) == 2
    assert "already holds a run: add --resume" in capsys.readouterr().err
    assert main(["design", "run", "lra-listops", "--out", str(out), "--resume"]) == 2
    assert f"{out} is a run of lra-text, not lra-listops" in capsys.readouterr().err
