"""The offline agent's moves on `attention.py` (AIRA-Design on LRA without an LLM).

`MechanismSpace` is the LRA task's `ProposalSpace`; proposals are `{"files": {"attention.py": code}}`.

- draft (sample): a mechanism from the project's library (aira/tasks/lra/mechanisms: full softmax,
  local window, linear, Performer random features, Nystrom landmarks, gated long convolution);
- improve (mutate): one step on a hyperparameter, i.e. a keyword default of an `__init__` in the file
  (window, n_features, n_landmarks, pinv_iters, decay_init, or any other number), as a text edit;
  in the configurable setting, half the time one step on a key of the file's `SETTINGS` dict instead;
- crossover: the first parent's file with the second parent's values for the hyperparameters (and
  settings) they share; two different mechanisms with nothing shared become their sum
  (`0.5 * (A(x) + B(x))`);
- repair (debug): after a cap, time-out or memory failure, one step down on a size hyperparameter or
  setting; otherwise back to a library mechanism (the offline agent cannot read a traceback).

Edits work on the source text at the spans `ast` reports, so an LLM-written file is edited the same way
as a library one, and everything else in it is left byte for byte. Ideas are one line ("window 32 -> 16").
The settings in the configurable setting live in the file as a literal `SETTINGS = {...}`, so a
proposal stays one file for the LLM operators too; `read_settings` / `write_settings` handle it.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from typing import Any

from aira.agents.base import ProposalSpace
from aira.tasks.lra.mechanisms import MECHANISMS, path
from aira.tasks.lra.presets import LraPreset

EDITABLE = "attention.py"
SETTINGS_NAME = "SETTINGS"
MIX_MARK = "class _MixerA("  # a file made by combining two mechanisms (not combined again)

# Known hyperparameters and the values a step may move between; other numeric keyword defaults are
# halved or doubled. Seeds and epsilons are not search dimensions (a seed change is not progress).
STEPS: dict[str, tuple[float, ...]] = {
    "window": (4, 8, 16, 32, 64, 128, 256),
    "n_features": (16, 32, 64, 128, 256),
    "n_landmarks": (4, 8, 16, 32, 64),
    "pinv_iters": (3, 4, 6, 8, 12),
    "decay_init": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
    "dropout": (0.0, 0.05, 0.1, 0.2, 0.3),
}
FROZEN = {"seed", "eps", "d_model", "n_heads", "max_len"}
SETTING_STEPS: dict[str, tuple[float, ...]] = {
    "d_model": (16, 32, 48, 64, 96, 128, 192, 256, 384, 512),
    "n_layers": (1, 2, 3, 4, 6, 8),
    "n_heads": (1, 2, 4, 8, 16),
    "lr": (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2),
    "weight_decay": (0.0, 0.01, 0.05, 0.1),
    "dropout": (0.0, 0.05, 0.1, 0.2, 0.3),
    "batch_size": (8, 16, 32, 64, 128, 256, 512),
}
SHRINK_HYPER = ("window", "n_features", "n_landmarks", "pinv_iters")
SHRINK_SETTINGS = ("d_model", "n_layers", "batch_size")
_CAP_WORDS = ("cap", "timed-out", "wall-clock", "memory", "cpu time", "killed")

COMBINER = '''

import torch.nn as nn


class Attention(nn.Module):
    """Offline crossover: the sum of two parents' mixers."""

    def __init__(self, d_model, n_heads, max_len, **kwargs):
        super().__init__()
        self.a = _MixerA(d_model, n_heads, max_len, **kwargs)
        self.b = _MixerB(d_model, n_heads, max_len, **kwargs)

    def forward(self, x, key_padding_mask):
        return 0.5 * (self.a(x, key_padding_mask) + self.b(x, key_padding_mask))
'''


# ---------------------------------------------------------------------------------------------------
# Source edits at ast spans


def _offsets(code: str) -> list[int]:
    """Byte offset of each line start in the UTF-8 encoding (ast columns are byte offsets)."""
    starts, total = [0], 0
    for line in code.encode("utf-8").splitlines(keepends=True):
        total += len(line)
        starts.append(total)
    return starts


def _splice(code: str, node: ast.AST, text: str) -> str:
    raw, starts = code.encode("utf-8"), _offsets(code)
    a = starts[node.lineno - 1] + node.col_offset
    b = starts[node.end_lineno - 1] + node.end_col_offset
    return (raw[:a] + text.encode("utf-8") + raw[b:]).decode("utf-8")


@dataclass(frozen=True)
class Hyper:
    cls: str          # the class whose __init__ has it
    name: str
    value: float
    node: ast.Constant


def hyperparameters(code: str) -> list[Hyper]:
    """Numeric keyword defaults of every class's `__init__` (seeds, epsilons and sizes left out)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    out = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in cls.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "__init__"):
                continue
            positional = fn.args.args[len(fn.args.args) - len(fn.args.defaults):]
            pairs = list(zip(positional, fn.args.defaults))
            pairs += [(a, d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None]
            for arg, d in pairs:
                if (isinstance(d, ast.Constant) and type(d.value) in (int, float)
                        and arg.arg not in FROZEN):
                    out.append(Hyper(cls.name, arg.arg, d.value, d))
    return out


def _fmt(value: float, integer: bool) -> str:
    return str(round(value)) if integer else f"{value:.4g}"


def _step(name: str, value: float, rng: random.Random, *, down: bool | None = None,
          table: dict = STEPS) -> float | None:
    """One step from `value`: the next known value up or down, else half or double."""
    integer = isinstance(value, int) and not isinstance(value, bool)
    go_down = rng.random() < 0.5 if down is None else down
    choices = table.get(name)
    if choices:
        nearest = min(range(len(choices)), key=lambda i: abs(choices[i] - value))
        i = nearest - 1 if go_down and choices[nearest] >= value else nearest
        i = nearest + 1 if not go_down and choices[nearest] <= value else i
        if not 0 <= i < len(choices):
            return None
        new = choices[i]
    else:
        new = value / 2 if go_down else value * 2
        if integer:
            new = max(1, round(new))
    if integer:
        new = round(new)
    return None if new == value else new


def set_hyper(code: str, h: Hyper, value: float) -> str:
    integer = isinstance(h.value, int)
    return _splice(code, h.node, _fmt(value, integer))


# ---------------------------------------------------------------------------------------------------
# SETTINGS = {...} in the file (configurable setting)


def _settings_node(tree: ast.Module) -> ast.Assign | None:
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == SETTINGS_NAME
                                             for t in n.targets):
            return n
    return None


def has_settings(code: str) -> bool:
    try:
        return _settings_node(ast.parse(code)) is not None
    except SyntaxError:
        return False


def read_settings(code: str) -> dict | None:
    """The file's `SETTINGS` literal (None when absent). Raises ValueError with one line when it is not
    a literal dict: it is read with ast.literal_eval, never executed by the harness."""
    node = _settings_node(ast.parse(code))
    if node is None:
        return None
    try:
        value = ast.literal_eval(node.value)
    except (ValueError, SyntaxError, TypeError):
        raise ValueError(f"{SETTINGS_NAME} must be a literal dict (numbers, strings, booleans), "
                         f"line {node.lineno}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{SETTINGS_NAME} must be a dict, got {type(value).__name__}")  # noqa: TRY004 - one-line message for the agent
    return value


def write_settings(code: str, settings: dict) -> str:
    """`code` with its SETTINGS assignment replaced (or added before the first class or function)."""
    line = f"{SETTINGS_NAME} = {settings!r}"
    tree = ast.parse(code)
    node = _settings_node(tree)
    if node is not None:
        return _splice(code, node, line)
    first = next((n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))), None)
    lines = code.splitlines(keepends=True)
    at = (min([first.lineno] + [d.lineno for d in first.decorator_list]) - 1) if first else len(lines)
    return "".join(lines[:at]) + line + "\n\n\n" + "".join(lines[at:])


def strip_settings(code: str) -> str:
    tree = ast.parse(code)
    node = _settings_node(tree)
    return code if node is None else _splice(code, node, "")


# ---------------------------------------------------------------------------------------------------
# The space


def _code(proposal: Any) -> str:
    return proposal["files"][EDITABLE]


def _wrap(code: str) -> dict:
    return {"files": {EDITABLE: code}}


class MechanismSpace(ProposalSpace):
    """Search moves over attention.py files; see the module docstring."""

    def __init__(self, preset: LraPreset, *, configurable: bool = False,
                 library: dict[str, str] | None = None):
        self.preset, self.configurable = preset, configurable
        self.library = library or {name: path(name).read_text() for name in MECHANISMS}

    # -- settings ---------------------------------------------------------------------------------

    def default_settings(self) -> dict:
        d = self.preset.defaults
        return {k: getattr(d, k) for k in ("d_model", "n_layers", "n_heads", "lr", "weight_decay",
                                           "dropout", "batch_size")}

    def _valid(self, settings: dict) -> bool:
        from aira.tasks.lra.contract import validate_settings
        from aira.tasks.lra.model import ContractError

        try:
            validate_settings(settings, self.preset)
        except ContractError:
            return False
        return True

    def _settings_move(self, code: str, rng: random.Random, *, keys=None, down=None) -> tuple[str, str] | None:
        try:
            current = read_settings(code)
        except ValueError:
            current = None
        current = dict(current) if current is not None else self.default_settings()
        keys = list(keys or SETTING_STEPS)
        rng.shuffle(keys)
        for key in keys:
            value = current.get(key, self.default_settings()[key])
            new = _step(key, value, rng, down=down, table=SETTING_STEPS)
            if new is None:
                continue
            trial = current | {key: new}
            if self._valid(trial):
                return write_settings(code, trial), f"{key} {value:g} -> {new:g}"
        return None

    # -- moves --------------------------------------------------------------------------------------

    def _draft(self, rng: random.Random, name: str | None = None) -> tuple[str, str]:
        name = name or rng.choice(sorted(self.library))
        code = self.library[name]
        idea = f"draft: {name} ({MECHANISMS.get(name, 'library mechanism')})"
        if self.configurable:
            code = write_settings(code, self.default_settings())
        return code, idea

    def library_proposal(self, name: str) -> dict:
        """A library mechanism as a proposal (with the default SETTINGS in the configurable setting)."""
        return _wrap(self._draft(random.Random(0), name)[0])

    def sample(self, rng: random.Random) -> tuple[dict, str]:
        code, idea = self._draft(rng)
        if self.configurable and rng.random() < 0.5 and (out := self._settings_move(code, rng)):
            code, idea = out[0], f"{idea}; {out[1]}"
        return _wrap(code), idea

    def _hyper_move(self, code: str, rng: random.Random, *, names=None, down=None) -> tuple[str, str] | None:
        hypers = [h for h in hyperparameters(code) if names is None or h.name in names]
        rng.shuffle(hypers)
        for h in hypers:
            new = _step(h.name, h.value, rng, down=down)
            if new is not None:
                where = "" if h.cls == "Attention" else f" ({h.cls})"
                return set_hyper(code, h, new), f"{h.name}{where} {h.value:g} -> {new:g}"
        return None

    def mutate(self, proposal: Any, rng: random.Random) -> tuple[dict, str]:
        code = _code(proposal)
        moves = [self._hyper_move]
        if self.configurable:
            moves = [self._settings_move, self._hyper_move] if rng.random() < 0.5 else [self._hyper_move,
                                                                                        self._settings_move]
        for move in moves:
            if out := move(code, rng):
                return _wrap(out[0]), out[1]
        # Nothing to turn (e.g. full softmax has no hyperparameter): try another mechanism.
        return self.sample(rng)

    def crossover(self, a: Any, b: Any, rng: random.Random) -> tuple[dict, str]:
        code_a, code_b = _code(a), _code(b)
        hb = {(h.cls, h.name): h.value for h in hyperparameters(code_b)}
        taken: list[str] = []
        # One edit per parse: an edit moves the spans after it.
        while h := next((h for h in hyperparameters(code_a) if f"{h.cls}.{h.name}" not in taken
                         and hb.get((h.cls, h.name), h.value) != h.value), None):
            code_a = set_hyper(code_a, h, hb[(h.cls, h.name)])
            taken.append(f"{h.cls}.{h.name}")
        taken = [t.removeprefix("Attention.") for t in taken]
        if self.configurable:
            try:
                sa, sb = read_settings(code_a), read_settings(code_b)
            except ValueError:
                sa = sb = None
            if sa is not None and sb is not None:
                differ = [k for k in sb if k in SETTING_STEPS and sa.get(k) != sb[k]]
                keys = [k for k in differ if rng.random() < 0.5] or differ[:1]
                trial = sa | {k: sb[k] for k in keys}
                if keys and self._valid(trial):
                    code_a = write_settings(code_a, trial)
                    taken += keys
        if taken:
            return _wrap(code_a), f"crossover: {', '.join(taken)} from the second parent"
        different = skeleton(code_a) != skeleton(code_b) and MIX_MARK not in code_a + code_b
        if different and (mixed := combine(code_a, code_b)) is not None:
            return _wrap(mixed), "crossover: the sum of the two parents' mixers"
        return self.mutate(a, rng)

    def repair(self, proposal: Any, error: str, rng: random.Random) -> tuple[dict, str]:
        first = (error.strip().splitlines() or ["failed"])[0][:60]
        try:
            code = _code(proposal)
            ast.parse(code)
        except (KeyError, TypeError, SyntaxError):
            code = None
        if code is not None and any(w in error.lower() for w in _CAP_WORDS):
            out = self._hyper_move(code, rng, names=SHRINK_HYPER, down=True)
            if out is None and self.configurable:
                out = self._settings_move(code, rng, keys=SHRINK_SETTINGS, down=True)
            if out is not None:
                return _wrap(out[0]), f"repair after '{first}': {out[1]}"
        fresh, idea = self._draft(rng)
        return _wrap(fresh), f"repair after '{first}': back to the library, {idea.removeprefix('draft: ')}"


def skeleton(code: str) -> str:
    """The file without its SETTINGS and with every hyperparameter value blanked: equal skeletons
    are the same mechanism."""
    try:
        code = strip_settings(code)
    except SyntaxError:
        return code
    for h in sorted(hyperparameters(code), key=lambda h: (h.node.lineno, h.node.col_offset), reverse=True):
        code = _splice(code, h.node, "_")
    return code


def combine(code_a: str, code_b: str) -> str | None:
    """One file holding both mechanisms as _MixerA / _MixerB and an Attention that averages them;
    None when the result does not compile (e.g. a `from __future__` import in the second file)."""
    rename = re.compile(r"^class Attention\b", re.MULTILINE)
    a = rename.sub("class _MixerA", strip_settings(code_a), count=1)
    b = rename.sub("class _MixerB", strip_settings(code_b), count=1)
    settings = None
    try:
        settings = read_settings(code_a)
    except ValueError:
        pass
    code = f"{a.rstrip()}\n\n\n# --- second parent ---\n{b.rstrip()}\n{COMBINER}"
    if settings is not None:
        code = write_settings(code, settings)
    try:
        compile(code, EDITABLE, "exec")
    except SyntaxError:
        return None
    return code
