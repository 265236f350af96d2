"""`aira report`: the command writes the page; bad input is one line and exit code 2."""

from __future__ import annotations

import shutil

import pytest

from aira.cli import main


def test_report_command_writes_the_page(plain_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(plain_run), "--out", str(out), "--top", "5"]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert out.read_text().count("<tr class") + out.read_text().count("<tr data") >= 5
    assert (tmp_path / "r" / "leaderboard.png").is_file()


def test_bad_run_path_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("aira: error: no run at ")
    (tmp_path / "config.json").write_text("{}")  # a config without a journal is not a run either
    assert main(["report", str(tmp_path)]) == 2
    assert "no run at" in capsys.readouterr().err


def test_bad_top_is_exit_2(plain_run, capsys):
    assert main(["report", str(plain_run), "--top", "0"]) == 2
    assert capsys.readouterr().err.strip() == "aira: error: --top must be at least 1, got 0"


NOT_UTF8 = bytes(range(256)) * 8


@pytest.mark.parametrize(
    "file, how, message",
    [
        ("journal.sqlite", lambda b: b[: len(b) // 2], "cannot be read as a run journal (database disk"),
        ("journal.sqlite", lambda b: NOT_UTF8, "cannot be read as a run journal (file is not a database)"),
        ("journal.sqlite", lambda b: b"{}", "cannot be read as a run journal (file is not a database)"),
        ("journal.sqlite", lambda b: b"", "is empty (0 bytes): not a run journal"),
        ("config.json", lambda b: b[: len(b) // 2], "is not a valid run config"),
        ("config.json", lambda b: NOT_UTF8, "is not a valid run config"),
        ("config.json", lambda b: b"{}", "is not a valid run config"),
        ("config.json", lambda b: b"[]", "is not a valid run config"),
    ],
    ids=["journal truncated", "journal random bytes", "journal {}", "journal 0 bytes",
         "config truncated", "config random bytes", "config {}", "config []"],
)
def test_a_corrupt_run_is_one_line_and_exit_2(plain_run, tmp_path, capsys, file, how, message):
    run = tmp_path / "bad"
    shutil.copytree(plain_run, run, ignore=shutil.ignore_patterns("report", "report.html"))
    (run / file).write_bytes(how((run / file).read_bytes()))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aira: error: {run / file} ") and message in err and err.count("\n") == 1
    assert not (run / "report.html").exists()


def test_report_json(plain_run, tmp_path, capsys):
    import json

    out = tmp_path / "r.html"
    assert main(["report", str(plain_run), "--out", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["report"] == str(out) and out.is_file()
    assert sorted(p.rsplit("/", 1)[1] for p in d["images"]) == sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert any(p.endswith("best_vs_cost.png") for p in d["images"])
