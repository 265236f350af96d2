"""The offline agent's edit library: text-level changes to train.py's constants."""

from __future__ import annotations

import ast
import difflib
import random
from pathlib import Path

import pytest

import aira.tasks.autoresearch as pkg
from aira.tasks.autoresearch.edits import BY_NAME, LIBRARY, ScriptSpace, apply_edit, current_value

BASELINE = (Path(pkg.__file__).parent / "train.py").read_text()


def _changed_lines(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


@pytest.mark.parametrize("edit", LIBRARY, ids=[e.name for e in LIBRARY])
def test_every_edit_applies_to_the_baseline_and_changes_one_line(edit):
    out = apply_edit(BASELINE, edit, "cpu", random.Random(1))
    assert out is not None, f"the baseline has no constant {edit.name}"
    code, idea = out
    ast.parse(code)
    changed = _changed_lines(BASELINE, code)
    assert len(changed) == 2
    assert changed[0].startswith(f"-{edit.name}") and changed[1].startswith(f"+{edit.name}")
    old, new = current_value(BASELINE, edit.name, "cpu"), current_value(code, edit.name, "cpu")
    assert old != new and idea.endswith(f"{old} -> {new}")


def test_per_preset_values_move_only_the_active_preset():
    code, idea = apply_edit(BASELINE, BY_NAME["DEPTH"], "cpu", random.Random(0))
    assert idea in ("raise DEPTH[cpu] 2 -> 3", "lower DEPTH[cpu] 2 -> 1")
    assert current_value(code, "DEPTH", "gpu") == "8" and current_value(code, "DEPTH", "test") == "1"


def test_scale_edit_text_and_missing_constant():
    code, idea = apply_edit("MATRIX_LR = 0.02  # Muon\n", BY_NAME["MATRIX_LR"], "cpu", random.Random(3))
    assert (code, idea) in (("MATRIX_LR = 0.03  # Muon\n", "raise MATRIX_LR 0.02 -> 0.03"),
                            ("MATRIX_LR = 0.0134  # Muon\n", "lower MATRIX_LR 0.02 -> 0.0134"))
    assert apply_edit("LR = 0.1\n", BY_NAME["MATRIX_LR"], "cpu", random.Random(0)) is None


def test_space_moves():
    space, rng = ScriptSpace(BASELINE, "test"), random.Random(0)
    draft, idea = space.sample(rng)
    assert 1 <= len(_changed_lines(BASELINE, draft["files"]["train.py"])) // 2 <= 2 and idea
    b = {"files": {"train.py": BASELINE.replace('ACTIVATION = "relu2"', 'ACTIVATION = "gelu"')
                   .replace("WARMDOWN_FRAC = 0.4", "WARMDOWN_FRAC = 0.6")}}
    for seed in range(10):
        child, idea = space.crossover({"files": {"train.py": BASELINE}}, b, random.Random(seed))
        if idea.startswith("crossover: "):
            break
    taken = idea.removeprefix("crossover: ").removesuffix(" from the second parent").split(", ")
    assert taken and set(taken) <= {"ACTIVATION", "WARMDOWN_FRAC"}
    for name in ("ACTIVATION", "WARMDOWN_FRAC"):
        src = b["files"]["train.py"] if name in taken else BASELINE
        assert current_value(child["files"]["train.py"], name, "test") == current_value(src, name, "test")
    # After a timeout the repair shrinks the model instead of guessing.
    fixed, idea = space.repair(draft, "killed after 124s: 2 x the 2s budget", rng)
    assert "repair after 'killed after" in idea and ("DEPTH" in idea or "BATCH" in idea)
    # Other failures start again from the baseline with one edit.
    fixed, idea = space.repair(draft, "train.py failed (exit 1)", rng)
    assert idea.startswith("repair: back to the baseline, then ")
    assert len(_changed_lines(BASELINE, fixed["files"]["train.py"])) == 2
