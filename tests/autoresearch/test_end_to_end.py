"""A tiny offline run end to end on CPU (`aira design run autoresearch`), the eval verb, parquet data."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from aira.agents.journal import Journal
from aira.agents.sandbox import isolation_mode
from aira.cli import main
from aira.tasks.autoresearch.evaluate import frozen_hashes
from aira.tasks.autoresearch.loop import read_results

needs_sandbox = pytest.mark.skipif(isolation_mode() is None,
                                   reason="no namespaces here: the sandbox cannot run")


def _data_shas(tokens) -> dict:
    return {f: hashlib.sha256((tokens.root / f).read_bytes()).hexdigest()
            for f in ("train.bin", "val.bin", "heldout.bin", "tokenizer.json")}


@needs_sandbox
@pytest.mark.slow  # three real evaluations: about 30 s on an idle core
def test_tiny_offline_run(tmp_path, corpus, cache_dir, tokens, capsys):
    before = (frozen_hashes(), _data_shas(tokens))
    out = tmp_path / "run"
    rc = main(["design", "run", "autoresearch", "--preset", "test", "--time-budget", "1", "--data", corpus,
               "--cache-dir", cache_dir, "--executor", "inline", "--noise-seeds", "2", "--budget", "1evals",
               "--out", str(out), "--quiet"])
    assert rc == 0
    report = capsys.readouterr().out
    rows = read_results(out)
    assert [r["status"] for r in rows][:2] == ["baseline", "baseline"] and len(rows) == 3
    assert rows[2]["status"] in ("keep", "discard", "crash")
    assert rows[2]["description"].startswith("[offline] ")
    with Journal(out, readonly=True) as j:
        nodes = j.nodes()
    base = [n for n in nodes if n.operator == "reference"]
    assert [n.status.value for n in base] == ["ok", "ok"] and [n.seed for n in base] == [0, 1]
    for n in base:  # val_bpb from the harness: a real number, and a hidden held-out one beside it
        assert 0.3 < n.metric < 5 and 0.3 < n.selection_metric < 5 and n.metrics["eval_bytes"] > 0
        assert n.metrics["preset"] == "test" and n.metrics["sandbox"] == "isolated"
        assert 1.0 <= n.metrics["training_seconds"] < 3.0  # the script stopped on the harness's budget
    assert base[0].metric != base[1].metric  # two seeds: a noise floor, not one number twice
    assert "## Autoresearch" in report and "baseline val_bpb:" in report and "Not comparable" in report
    assert (out / "progress.png").is_file() and (out / "report.md").read_text().strip() in report
    log = subprocess.run(["git", "log", "--format=%s"], cwd=out / "experiments", capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert log[-1] == "baseline" and (rows[2]["status"] != "keep" or log[0].startswith("n0003: "))
    work = out / "work" / "n0003"  # every candidate's code and log stay in the run, not the data copy
    assert sorted(p.name for p in work.iterdir()) == ["run.log", "train"]  # ours, and the sandbox's folder
    assert sorted(p.name for p in (work / "train").iterdir()) == ["train.py"]
    assert (frozen_hashes(), _data_shas(tokens)) == before
    # Resuming a finished run with its budget spent evaluates nothing and rewrites the same report.
    assert main(["design", "run", "autoresearch", "--out", str(out), "--resume", "--quiet"]) == 0
    assert capsys.readouterr().out == report and len(read_results(out)) == 3
    # `aira runs resume` hands a design run to its own verb, so the keep/reset loop is reattached
    assert main(["runs", "resume", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == report and len(read_results(out)) == 3
    assert f"resuming it as `aira design run autoresearch --out {out} --resume`" in captured.err
    assert main(["design", "run", "autoresearch", "--out", str(out), "--quiet"]) == 2
    assert "already holds a run: add --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_verb(tmp_path, corpus, cache_dir, capsys):
    f = tmp_path / "train.py"
    f.write_text("print('no model here')\n")
    common = ["--preset", "test", "--data", corpus, "--cache-dir", cache_dir]
    if isolation_mode() is not None:
        assert main(["design", "eval", "autoresearch", "--file", str(f), "--json", *common]) == 1
        captured = capsys.readouterr()
        result = json.loads(captured.out)  # stdout is the JSON alone; the start line went to stderr
        assert result["status"] == "crashed" and "saved no model" in result["error"]
        assert "2 s budget, killed after 124 s) in the sandbox" in captured.err
        assert "  train.py | no model here" in captured.err  # the script's output, relayed as it runs
        # the baseline says what it trains and how far it is, and the harness says when it scores
        assert main(["design", "eval", "autoresearch", *common]) == 0
        err = capsys.readouterr().err
        assert "train.py | model: " in err and "M parameters, depth 1" in err and "2 s budget" in err
        assert "train.py | step 3: loss " in err and "of the budget" in err
        assert "scoring its model on the validation and held-out splits" in err
    f.write_text("def broken(:\n")
    assert main(["design", "eval", "autoresearch", "--file", str(f), *common]) == 2
    assert "train.py does not parse: line 1" in capsys.readouterr().err
    assert main(["design", "eval", "autoresearch", "--file", str(tmp_path / "nope.py")]) == 2
    assert main(["design", "eval", "lra-nothing"]) == 2
    assert "unknown design task 'lra-nothing'" in capsys.readouterr().err
    assert main(["design", "eval", "autoresearch", "--preset", "huge"]) == 2


def test_parquet_shards_as_data(tmp_path, cache_dir, make_text):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aira.tasks.autoresearch.data import open_data, stage_train

    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(2):
        docs = make_text(1500, seed=i).split("\n")
        table = pa.table({"text": docs, "id": list(range(len(docs)))})
        pq.write_table(table, shards / f"shard_{i:05d}.parquet")
    data = open_data(str(shards), cache_dir=cache_dir)
    assert data.meta["source"].endswith("shards") and data.vocab_size <= 8192
    assert all(data.meta["splits"][s]["tokens"] > 0 for s in ("train", "val", "heldout"))
    staged = stage_train(data)
    assert sorted(p.name for p in staged.iterdir()) == ["meta.json", "train.bin"]
    meta = json.loads((staged / "meta.json").read_text())
    assert meta["tokens"] == data.meta["splits"]["train"]["tokens"] and meta["vocab_size"] == data.vocab_size
