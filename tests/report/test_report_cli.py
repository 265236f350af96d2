"""`aira report`: the command writes the page; bad input is one line and exit code 2."""

from __future__ import annotations

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
