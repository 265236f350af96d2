"""`aira runs`: start, ls, show (text and --json), resume, and one-line errors with exit code 2 (bad
input, and a run folder whose journal or config is corrupt)."""

import json

import pytest

from aira.cli import main


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rc = main(
        [
            "runs",
            "start",
            "--task",
            "synthetic",
            "--task-arg",
            "noise=0.01",
            "--agents",
            "greedy:offline",
            "random:offline",
            "--budget",
            "6evals",
            "--executor",
            "inline",
            "--noise-seeds",
            "0",
            "--out",
            str(root / "r1"),
            "--quiet",
        ]
    )
    assert rc == 0
    return root


def test_start_prints_a_summary(finished_run, capsys):
    assert (finished_run / "r1" / "summary.json").is_file()
    assert json.loads((finished_run / "r1" / "config.json").read_text())["task_kwargs"] == {"noise": 0.01}


def test_show_json_lists_every_node(finished_run, capsys):
    capsys.readouterr()
    assert main(["runs", "show", str(finished_run / "r1"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    nodes = out["nodes"]
    assert len(nodes) == 6 and len({n["id"] for n in nodes}) == 6
    for n in nodes:
        assert {
            "id",
            "parents",
            "agent",
            "operator",
            "proposal",
            "status",
            "metric",
            "selection_metric",
            "metrics",
            "seconds",
            "cost_usd",
        } <= set(n)
        assert n["status"] == "ok" and len(n["proposal"]) == 16
    assert {n["agent"] for n in nodes} == {"greedy:offline#0", "random:offline#1"}
    assert [a["agent"] for a in out["agents"]] == ["greedy:offline#0", "random:offline#1"]
    assert out["task"]["name"] == "synthetic-0" and out["noise_floor"] is None


def test_show_text_and_ls(finished_run, capsys):
    capsys.readouterr()
    assert main(["runs", "show", str(finished_run / "r1"), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "leaderboard" in text and "greedy:offline#0" in text
    assert len(text[text.index("leaderboard") :].strip().splitlines()) == 2 + 3
    assert main(["runs", "ls", "--root", str(finished_run)]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[1].split()[:3] == ["r1", "synthetic-0", "6"] and "finished" in rows[1]


def test_resume_with_a_bigger_budget(finished_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run / "r1", run)
    # the stored executor is "inline": resume re-creates it by name
    assert main(["runs", "resume", str(run), "--budget", "9evals", "--quiet"]) == 0
    assert "evaluation budget spent (9)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["runs", "show", "no/such/run"], "no run at no/such/run"),
        (["runs", "resume", "no/such/run"], "no run at no/such/run"),
        (["runs", "ls", "--root", "no/such/root"], "no runs folder"),
        (
            ["runs", "start", "--task", "synthetic", "--agents", "best:offline", "--out", "x"],
            "unknown policy 'best'",
        ),
        (["runs", "start", "--task", "synthetic", "--budget", "100", "--out", "x"], "ambiguous budget"),
        (["runs", "start", "--task", "nope", "--budget", "1evals", "--out", "{out}"], "unknown task 'nope'"),
        (["runs", "start", "--task", "synthetic", "--task-arg", "oops", "--out", "x"], "bad --task-arg"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    argv = [a.replace("{out}", str(tmp_path / "o")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


NOT_UTF8 = bytes(range(256)) * 8

JOURNALS = {
    "truncated": (lambda b: b[: len(b) // 2], "cannot be read as a run journal (database disk image is"),
    "random bytes": (lambda b: NOT_UTF8, "cannot be read as a run journal (file is not a database)"),
    "{}": (lambda b: b"{}", "cannot be read as a run journal (file is not a database)"),
    "0 bytes": (lambda b: b"", "is empty (0 bytes): not a run journal"),
}
CONFIGS = {
    "truncated": (lambda b: b[: len(b) // 2], "cannot be read as a run config (Unterminated string"),
    "random bytes": (lambda b: NOT_UTF8, "cannot be read as a run config ('utf-8' codec can't decode"),
    "{}": (lambda b: b"{}", 'is not a run config (no "task" in it)'),
    "[]": (lambda b: b"[]", 'is not a run config (no "task" in it)'),
}


def _corrupt(finished_run, tmp_path, file, how):
    import shutil

    run = tmp_path / "runs" / "bad"
    shutil.copytree(finished_run / "r1", run)
    (run / file).write_bytes(how((run / file).read_bytes()))
    return run


@pytest.mark.parametrize(
    "file, how, message",
    [("journal.sqlite", *v) for v in JOURNALS.values()] + [("config.json", *v) for v in CONFIGS.values()],
    ids=[f"journal {k}" for k in JOURNALS] + [f"config {k}" for k in CONFIGS],
)
def test_a_corrupt_run_is_one_line_and_exit_2(finished_run, tmp_path, capsys, file, how, message):
    import shutil

    run = _corrupt(finished_run, tmp_path, file, how)
    before = (run / "journal.sqlite").read_bytes()
    for argv in (["runs", "show", str(run)], ["runs", "show", "--json", str(run)],
                 ["runs", "resume", str(run), "--quiet"]):
        capsys.readouterr()
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert err.startswith(f"aira: error: {run / file} ") and message in err, (argv, err)
        assert err.count("\n") == 1 and out == ""
    assert (run / "journal.sqlite").read_bytes() == before  # resume changed nothing
    # ls notes the bad folder in one line and lists the others
    shutil.copytree(finished_run / "r1", tmp_path / "runs" / "good")
    assert main(["runs", "ls", "--root", str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"aira: skipping {run}: {run / file} ") and message in err and err.count("\n") == 1
    rows = out.strip().splitlines()
    assert len(rows) == 2 and rows[1].split()[:3] == ["good", "synthetic-0", "6"]


def test_show_into_a_reader_that_leaves_early_exits_quietly(finished_run, tmp_path):
    """`aira runs show --json RUN | head -1`: no BrokenPipeError traceback."""
    import os
    import shutil
    import subprocess
    import sys

    from aira.agents.journal import Journal
    from aira.agents.types import Node, Status

    run = tmp_path / "big"
    shutil.copytree(finished_run / "r1", run)
    with Journal(run) as j:  # ~1 MB of JSON: far more than a pipe holds
        for i in range(200):
            j.add(Node(id=f"x{i:04d}", agent="greedy:offline#0", operator="draft", proposal="AM" * 8,
                       idea="i" * 5000, status=Status.OK, metric=0.5))
    proc = subprocess.Popen([sys.executable, "-m", "aira", "runs", "show", "--json", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline() == b"{\n"
    proc.stdout.close()  # the reader leaves, as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait() == 1 and err == ""
