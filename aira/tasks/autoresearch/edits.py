"""The offline agent's library of training-script edits: known moves, applied to train.py as text.

Each edit names a top-level constant of the script (`NAME = value` at the start of a line) and a way to
change it: scale a number, step an integer, or pick another option. A value may be a literal or a
per-preset dict (`{"test": 1, "cpu": 2, "gpu": 8}[PRESET]`); then only the active preset's entry moves.
An edit whose constant the script no longer has (an LLM rewrote it) simply does not apply.

`ScriptSpace` is the task's `ProposalSpace`: draft = one or two edits on the baseline, improve = one edit
on the parent, crossover = each constant's line from one parent or the other, repair = shrink the model
after a timeout or memory failure, else one edit on the baseline (the offline agent cannot read a
traceback). Ideas are one line: "raise MATRIX_LR 0.02 -> 0.03".
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from aira.agents.base import ProposalSpace

NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|2\*\*\d+"


@dataclass(frozen=True)
class Edit:
    name: str            # the constant
    kind: str            # "scale" | "step" | "choice"
    options: tuple = ()  # scale: factors; step: deltas; choice: values (Python literals as text)
    minimum: float | None = None
    integer: bool = False
    topic: str = ""      # what the edit is about, for literature look-ups


LIBRARY: tuple[Edit, ...] = (
    Edit("MATRIX_LR", "scale", (0.67, 1.5), topic="learning rate muon"),
    Edit("EMBED_LR", "scale", (0.5, 2.0), topic="learning rate embedding"),
    Edit("UNEMBED_LR", "scale", (0.5, 2.0), topic="learning rate output head"),
    Edit("ADAMW_MATRIX_LR", "scale", (0.5, 2.0), topic="learning rate adamw"),
    Edit("WARMDOWN_FRAC", "choice", ("0.2", "0.3", "0.5", "0.6", "0.8"), topic="warmdown schedule decay"),
    Edit("WARMUP_FRAC", "choice", ("0.0", "0.02", "0.05"), topic="warmup schedule"),
    Edit("WEIGHT_DECAY", "choice", ("0.0", "0.01", "0.05", "0.1"), topic="weight decay regularisation"),
    Edit("DEPTH", "step", (-1, 1), minimum=1, integer=True, topic="depth width model size budget"),
    Edit("ASPECT_RATIO", "scale", (0.75, 1.5), minimum=8, integer=True, topic="width model size"),
    Edit("BATCH_SIZE", "scale", (0.5, 2.0), minimum=1, integer=True, topic="batch size"),
    Edit("TOTAL_BATCH_TOKENS", "scale", (0.5, 2.0), minimum=64, integer=True, topic="batch size tokens"),
    Edit("TRAIN_SEQ_LEN", "scale", (0.5, 2.0), minimum=16, integer=True, topic="sequence length context"),
    Edit("ACTIVATION", "choice", ('"relu2"', '"swiglu"', '"gelu"'), topic="activation mlp swiglu relu"),
    Edit("OPTIMIZER", "choice", ('"muon"', '"adamw"'), topic="optimizer muon adamw"),
    Edit("MLP_RATIO", "choice", ("2", "3", "4", "6"), topic="mlp width ratio"),
)
BY_NAME = {e.name: e for e in LIBRARY}
SHRINK = (("DEPTH", -1), ("BATCH_SIZE", 0.5), ("TOTAL_BATCH_TOKENS", 0.5))  # repairs after a timeout / OOM


def _line(code: str, name: str) -> re.Match | None:
    pattern = rf"^(?P<head>{name}\s*=\s*)(?P<value>[^#\n]*?)(?P<tail>\s*(?:#.*)?)$"
    return re.search(pattern, code, re.MULTILINE)


def current_value(code: str, name: str, preset: str) -> str | None:
    """The text of constant `name`'s value for `preset`, or None when the script has no such line."""
    m = _line(code, name)
    if m is None:
        return None
    span = _value_span(m.group("value"), preset)
    return None if span is None else m.group("value")[span[0]:span[1]]


def _value_span(value: str, preset: str) -> tuple[int, int] | None:
    """Where the active value sits in a constant's text: the preset's entry of a dict, else the whole."""
    if value.lstrip().startswith("{"):
        m = re.search(rf"""["']{re.escape(preset)}["']\s*:\s*(?P<v>{NUMBER}|"[^"]*"|'[^']*')""", value)
        return (m.start("v"), m.end("v")) if m else None
    stripped = value.strip()
    start = value.index(stripped) if stripped else 0
    return start, start + len(stripped)


def _fmt(x: float, integer: bool) -> str:
    if integer:
        return str(round(x))
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _new_value(edit: Edit, old: str, rng: random.Random) -> str | None:
    if edit.kind == "choice":
        others = [o for o in edit.options if o.replace("'", '"') != old.replace("'", '"')]
        return rng.choice(others) if others else None
    try:
        x = float(eval(old, {"__builtins__": {}})) if "**" in old else float(old)
    except (ValueError, SyntaxError):
        return None
    for _ in range(len(edit.options) * 2):
        d = rng.choice(edit.options)
        y = x * d if edit.kind == "scale" else x + d
        if edit.minimum is not None:
            y = max(edit.minimum, y)
        new = _fmt(y, edit.integer or (edit.kind == "step" and float(x).is_integer()))
        if new != old and float(new) != x:
            return new
    return None


def apply_edit(code: str, edit: Edit, preset: str, rng: random.Random) -> tuple[str, str] | None:
    """(new code, one-line idea) or None when the edit does not apply to this script."""
    m = _line(code, edit.name)
    if m is None:
        return None
    value = m.group("value")
    span = _value_span(value, preset)
    if span is None:
        return None
    old = value[span[0]:span[1]]
    new = _new_value(edit, old, rng)
    if new is None:
        return None
    new_value = value[:span[0]] + new + value[span[1]:]
    code = code[:m.start("value")] + new_value + code[m.end("value"):]
    verb = "set"
    try:
        verb = "raise" if float(new) > float(eval(old, {"__builtins__": {}})) else "lower"
    except (ValueError, SyntaxError, TypeError, NameError):
        pass
    where = f"[{preset}]" if value.lstrip().startswith("{") else ""
    return code, f"{verb} {edit.name}{where} {old} -> {new}"


def applicable(code: str, preset: str) -> list[Edit]:
    return [e for e in LIBRARY if current_value(code, e.name, preset) is not None]


class ScriptSpace(ProposalSpace):
    """Search moves over train.py for the offline agent (a `ProposalSpace`; see the module docstring)."""

    def __init__(self, baseline: str, preset: str, file: str = "train.py", prefer: list[str] | None = None):
        self.baseline, self.preset, self.file = baseline, preset, file
        self.prefer = prefer or []  # constants the literature talks about: tried twice as often

    def _code(self, proposal: Any) -> str:
        if isinstance(proposal, dict) and isinstance(proposal.get("files"), dict):
            return str(proposal["files"].get(self.file, ""))
        return str(proposal)

    def _wrap(self, code: str) -> dict:
        return {"files": {self.file: code}}

    def _one(self, code: str, rng: random.Random) -> tuple[str, str] | None:
        edits = applicable(code, self.preset)
        weights = [2.0 if e.name in self.prefer else 1.0 for e in edits]
        while edits:
            i = rng.choices(range(len(edits)), weights)[0]
            if (out := apply_edit(code, edits[i], self.preset, rng)) is not None:
                return out
            edits.pop(i)
            weights.pop(i)
        return None

    def sample(self, rng: random.Random) -> tuple[dict, str]:
        code, ideas = self.baseline, []
        for _ in range(rng.choice((1, 2))):
            if (out := self._one(code, rng)) is not None:
                code, idea = out
                ideas.append(idea)
        return self._wrap(code), "; ".join(ideas) or "baseline (no edit applies)"

    def mutate(self, proposal: Any, rng: random.Random) -> tuple[dict, str]:
        out = self._one(self._code(proposal), rng)
        if out is None:  # nothing left to turn on this script: start again from the baseline
            return self.sample(rng)
        return self._wrap(out[0]), out[1]

    def crossover(self, a: Any, b: Any, rng: random.Random) -> tuple[dict, str]:
        code_a, code_b = self._code(a), self._code(b)
        taken = []
        for edit in LIBRARY:
            ma, mb = _line(code_a, edit.name), _line(code_b, edit.name)
            if ma and mb and ma.group(0) != mb.group(0) and rng.random() < 0.5:
                code_a = code_a[:ma.start()] + mb.group(0) + code_a[ma.end():]
                taken.append(edit.name)
        if not taken:
            return self.mutate(a, rng)
        return self._wrap(code_a), f"crossover: {', '.join(taken)} from the second parent"

    def repair(self, proposal: Any, error: str, rng: random.Random) -> tuple[dict, str]:
        code = self._code(proposal)
        if any(w in error for w in ("killed after", "memory", "timed-out", "cpu time")):
            for name, step in SHRINK:
                edit = BY_NAME[name]
                shrink = Edit(name, "step" if edit.kind == "step" else "scale", (step,), edit.minimum, True)
                if (out := apply_edit(code, shrink, self.preset, rng)) is not None:
                    return self._wrap(out[0]), f"repair after '{error.splitlines()[0][:60]}': {out[1]}"
        out = self._one(self.baseline, rng)
        if out is None:
            return self._wrap(self.baseline), "repair: back to the baseline"
        return self._wrap(out[0]), f"repair: back to the baseline, then {out[1]}"
