"""Bad input over every verb (#19): each malformed invocation below exits with code 2 and one line on
stderr, with no traceback, and nothing is written or trained: no run folder appears, and the finished runs
it names are left as they were.

Each invocation also carries tiny settings (2 training steps, 2 evaluations, the inline executor), so a
case that is wrongly accepted fails fast instead of training for minutes.
"""

import os

import pytest

from aira.cli import main

TRAIN = ["train", "--pattern", "AM", "--preset", "tiny", "--task", "mad:in_context_recall", "--mad-settings",
         "tiny", "--budget", "2steps", "--threads", "1", "--quiet"]
COMPOSE = ["compose", "run", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--agents",
           "greedy:offline", "--no-controls", "--budget", "2evals", "--noise-seeds", "0", "--executor", "inline",
           "--quiet", "--out", "{out}"]
FIDELITY = ["compose", "fidelity", "--proxy", "smoke", "--space", "attn-mlp", "--layers", "4", "--limit", "3",
            "--seeds", "1", "--fidelities", "small", "--executor", "inline", "--out", "{out}"]
START = ["runs", "start", "--task", "synthetic", "--executor", "inline", "--budget", "2evals", "--noise-seeds", "0",
         "--quiet", "--out", "{out}"]
LRA = ["design", "eval", "lra-listops", "--preset", "smoke"]
AUTORESEARCH = ["design", "eval", "autoresearch", "--preset", "test"]
DESIGN_RUN = ["design", "run", "lra-listops", "--preset", "smoke", "--budget", "1evals", "--executor", "inline",
              "--noise-seeds", "0", "--quiet", "--out", "{out}"]
EXPORT = ["export", "--pattern", "AM", "--out", "{out}"]

# (argv, what the one line says). Placeholders: {file} a text file, {dir} a folder, {bin} a binary file,
# {missing} a path that does not exist, {out} a fresh output path, {run} a finished run, {crun} a finished
# Compose run.
CASES = [
    # train: numbers
    (TRAIN + ["--lr", "-1"], "--lr must be a positive number, got -1.0"),
    (TRAIN + ["--lr", "nan"], "--lr must be a positive number, got nan"),
    (TRAIN + ["--lr", "inf"], "--lr must be a positive number, got inf"),
    (TRAIN + ["--lr", "0"], "--lr must be a positive number, got 0.0"),
    (TRAIN + ["--threads", "-2"], "--threads must be at least 1, got -2"),
    (TRAIN + ["--threads", "0"], "--threads must be at least 1, got 0"),
    (TRAIN + ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (TRAIN + ["--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    (TRAIN + ["--seq-len", "-4"], "--seq-len must be at least 1, got -4"),
    (TRAIN + ["--vocab-size", "0"], "--vocab-size must be at least 1, got 0"),
    (TRAIN + ["--curve-points", "-1"], "--curve-points must be 0 or more, got -1"),
    (TRAIN + ["--lr", "x"], "argument --lr: invalid float value: 'x'"),
    (TRAIN + ["--budget", "-5steps"], "budget"),
    (TRAIN + ["--budget", "abc"], "budget"),
    # train: names and paths
    (TRAIN + ["--pattern", "ZZZ"], "ZZZ"),
    (TRAIN + ["--preset", "nosuch"], "nosuch"),
    (TRAIN + ["--task", "nosuch"], "nosuch"),
    (TRAIN + ["--task", "mad:nosuch"], "nosuch"),
    (TRAIN + ["--mad-settings", "nosuch"], "nosuch"),
    (TRAIN + ["--device", "nosuch"], "unknown --device 'nosuch'"),
    (TRAIN + ["--task", "lm:{missing}"], "unknown corpus"),
    (TRAIN + ["--json", "{dir}"], "--json {dir} is a folder; give a file name"),
    (TRAIN + ["--json", "{missing}/x.json"], "--json {missing}/x.json: folder {missing} does not exist"),
    (TRAIN + ["--json", "{file}/x.json"], "--json {file}/x.json: {file} is a file, not a folder"),
    # models
    (["models", "show", "--pattern", "ZZZ"], "ZZZ"),
    (["models", "show", "--pattern", "AM", "--preset", "nosuch"], "nosuch"),
    (["models", "show", "--pattern", "AM", "--seq-len", "-1"], "--seq-len must be >= 1, got -1"),
    # compose run
    (COMPOSE + ["--proxy", "{bin}"], "proxy file {bin} is not a text file"),
    (COMPOSE + ["--proxy", "{missing}.json"], "proxy file {missing}.json does not exist"),
    (COMPOSE + ["--proxy", "nosuch"], "unknown proxy 'nosuch'"),
    (COMPOSE + ["--out", "{file}"], "--out {file} is a file, not a folder"),
    (COMPOSE + ["--out", "/proc/nope/x"], "--out /proc/nope/x: cannot create the folder"),
    (COMPOSE + ["--layers", "0"], "layers"),
    (COMPOSE + ["--workers", "0"], "--workers must be at least 1, got 0"),
    (COMPOSE + ["--threads", "0"], "--threads must be at least 1, got 0"),
    (COMPOSE + ["--batch", "0"], "--batch must be at least 1, got 0"),
    (COMPOSE + ["--noise-seeds", "-1"], "bad noise_seeds -1: need 0 or more"),
    (COMPOSE + ["--budget", "abc"], "bad budget item 'abc'"),
    (COMPOSE + ["--space", "nosuch"], "nosuch"),
    (COMPOSE + ["--agents", "nosuch:offline"], "unknown policy 'nosuch'"),
    (COMPOSE + ["--executor", "nosuch"], "unknown executor 'nosuch'"),
    (COMPOSE + ["--promote", "0"], "bad --promote '0': K and EVERY must be at least 1"),
    (COMPOSE + ["--promote", "2:x"], "bad --promote '2:x': use K or K:EVERY"),
    # compose aggregate / extrapolate / halving
    (["compose", "aggregate", "{crun}", "--method", "nosuch"], "unknown aggregation method 'nosuch'"),
    (["compose", "aggregate", "{crun}", "--clusters", "0"], "--clusters must be at least 1, got 0"),
    (["compose", "aggregate", "{missing}"], "no run at"),
    (["compose", "extrapolate", "--pattern", "AM", "--target", "nosuch"], "nosuch"),
    (["compose", "extrapolate", "--pattern", "AM", "--strategy", "nosuch"], "unknown strategy 'nosuch'"),
    (["compose", "extrapolate", "--pattern", "AM", "--out", "{dir}"], "--out {dir} is a folder; give a file name"),
    (["compose", "extrapolate", "--pattern", "AM", "--out", "/proc/nope/x.json"], "cannot create the folder"),
    (["compose", "extrapolate"], "give a run folder or --pattern"),
    (["compose", "halving", "{crun}", "--eta", "1", "--executor", "inline"], "--eta must be at least 2"),
    (["compose", "halving", "{missing}"], "no run at"),
    # compose scaling / fidelity
    (["compose", "scaling", "--patterns", "AM", "--budgets", "abc", "--out", "{out}"], "abc"),
    (["compose", "scaling", "--patterns", "ZZZ", "--budgets", "1e9", "--out", "{out}"], "ZZZ"),
    (FIDELITY + ["--fidelities", "nosuch"], "--fidelities must be a comma list"),
    (FIDELITY + ["--seeds", "0"], "--seeds must be at least 1, got 0"),
    (FIDELITY + ["--patterns", "{missing}"], "no file"),
    (FIDELITY + ["--patterns", "{bin}"], "--patterns {bin} is not a text file"),
    (FIDELITY + ["--timeout", "-1"], "--timeout must be a positive number of seconds, got -1.0"),
    (FIDELITY + ["--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
    (FIDELITY + ["--proxy", "{bin}"], "proxy file {bin} is not a text file"),
    (FIDELITY + ["--out", "{file}"], "--out {file} is a file, not a folder"),
    (FIDELITY + ["--executor", "nosuch"], "unknown executor 'nosuch'"),
    (["compose", "fidelity", "--show", "{missing}"], "missing"),
    # design
    (["design", "eval", "nosuch"], "unknown design task 'nosuch'"),
    (LRA + ["--file", "{bin}"], "--file {bin} is not a text file"),
    (LRA + ["--file", "{dir}"], "--file {dir} is a folder, not a file"),
    (LRA + ["--file", "{missing}"], "--file {missing} does not exist"),
    (LRA + ["--preset", "nosuch"], "nosuch"),
    (LRA + ["--data-dir", "{file}"], "--data-dir {file} is not a folder"),
    (AUTORESEARCH + ["--file", "{bin}"], "--file {bin} is not a text file"),
    (AUTORESEARCH + ["--data", "{missing}"], "unknown corpus"),
    (AUTORESEARCH + ["--preset", "nosuch"], "nosuch"),
    (DESIGN_RUN + ["--out", "{file}"], "--out {file} is a file, not a folder"),
    (DESIGN_RUN + ["--workers", "0"], "workers"),
    # runs
    (["runs", "show", "{run}", "--top", "-3"], "--top must be at least 1, got -3"),
    (["runs", "show", "{missing}"], "no run at"),
    (["runs", "ls", "--root", "{missing}"], "no runs folder at"),
    (["runs", "resume", "{run}", "--budget", "abc"], "bad budget item 'abc'"),
    (["runs", "resume", "{missing}"], "no run at"),
    (START + ["--task", "nosuch"], "unknown task 'nosuch'"),
    (START + ["--task-arg", "noise=abc"], "bad option noise='abc' for task 'synthetic': expected a number"),
    (START + ["--task-arg", "nosuch=1"], "bad options for task 'synthetic'"),
    (START + ["--task-arg", "noise"], "bad --task-arg 'noise': use KEY=VALUE"),
    (START + ["--workers", "0"], "bad number of workers 0"),
    (START + ["--improve-margin", "abc"], "bad improve_margin 'abc'"),
    (START + ["--improve-margin", "nan"], "bad improve_margin nan"),
    (START + ["--executor", "nosuch"], "unknown executor 'nosuch'"),
    (START + ["--out", "{file}"], "--out {file} is a file, not a folder"),
    (START + ["--out", "/proc/nope/r"], "--out /proc/nope/r: cannot create the folder"),
    # report, export, cache, demo
    (["report", "{run}", "--top", "-1"], "--top must be at least 1, got -1"),
    (["report", "{missing}"], "missing"),
    (EXPORT + ["--out", "{file}"], "--out {file} is a file, not a folder"),
    (EXPORT + ["--out", "/proc/nope/e"], "--out /proc/nope/e: cannot create the folder"),
    (["export", "--config", "{dir}", "--out", "{out}"], "config file {dir} is a folder, not a file"),
    (["export", "--config", "{bin}", "--out", "{out}"], "config file {bin} is not a text file"),
    (["export", "--config", "{missing}", "--out", "{out}"], "config file {missing} does not exist"),
    (EXPORT + ["--preset", "nosuch"], "nosuch"),
    (EXPORT + ["--vocab-size", "0"], "--vocab-size must be positive, got 0"),
    (EXPORT + ["--tokenizer", "{missing}"], "no aira tokenizer at {missing}"),
    (EXPORT + ["--tokenizer", "{bin}"], "tokenizer {bin} is not a text file"),
    (EXPORT + ["--weights", "{bin}"], "{bin}"),
    (["cache", "info", "--cache", "{file}"], "{file}"),
    (["demo", "--budget", "abc", "--out", "{out}"], "bad budget item 'abc'"),
    (["demo", "--out", "{file}"], "--out {file} is a file, not a folder"),
    (["demo", "--workers", "0", "--out", "{out}"], "--workers must be at least 1, got 0"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished synthetic run and a finished Compose run, shared by the cases that name one."""
    root = tmp_path_factory.mktemp("finished")
    assert main(START[:-1] + [str(root / "run")]) == 0
    assert main(COMPOSE[:-1] + [str(root / "crun")]) == 0
    return root


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if "-wal" not in p.name
            and "-shm" not in p.name and p.name != "writer.lock"}


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_nothing_is_written(argv, message, runs, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "file.txt").write_text("hello\n")
    (work / "dir").mkdir()
    (work / "bin.dat").write_bytes(bytes(range(256)) * 4)
    names = {"file": work / "file.txt", "dir": work / "dir", "bin": work / "bin.dat", "missing": work / "missing",
             "out": work / "out", "run": runs / "run", "crun": runs / "crun"}
    argv = [a.format(**names) for a in argv]
    message = message.format(**names)
    monkeypatch.chdir(work)  # default output folders (runs/...) would land here
    before_work, before_runs = _snapshot(work), _snapshot(runs)
    capsys.readouterr()

    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (a flag's type) exit from the parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(("aira: error: ", "aira ")) and ": error: " in lines[0], err
    assert message in lines[0], err
    assert "Traceback" not in err
    assert _snapshot(work) == before_work  # no output folder, file or run was created
    assert _snapshot(runs) == before_runs  # nor any file of a finished run rewritten
    assert not os.path.exists("runs")
