"""Layer patterns: the data that names an architecture, one primitive code per layer.

Accepted forms (mixable, whitespace and commas are separators):
  - codes:       "AMAMSMAM" (lower case too: "amam")
  - names:       "attn,mlp,mamba" or "attn mlp mamba"
  - repetition:  "(AM)x16", "(AM)x2S(AM)x3", "A (M)x3", nested "((AM)x2 S)x2"; `x`, `X`, `*` all work
An all-upper-case letter run made of codes is read as codes ("SWA" is S, W, A); any other run is a
registered name if it is one ("swa", "Mamba"), else lower-case codes ("amam"). `compress_pattern` writes the repetition form back, and parsing it gives the same list.
"""

from __future__ import annotations

import math
from collections import Counter

from aira.errors import UsageError
from aira.models import registry

_REPEAT_MARKS = "xX*×"


def _fail(text: str, why: str) -> UsageError:
    return UsageError(f"invalid layer pattern {text!r}: {why}; valid codes: {registry.valid_codes()}")


def _letters_to_codes(word: str, text: str) -> list[str]:
    """An upper-case run of codes ("SWA": S, W, A), else a name ("swa", "Mamba"), else lower-case codes."""
    codes = []
    for ch in word.upper():
        try:
            codes.append(registry.get(ch).code)
        except UsageError:
            codes = None
            break
    if codes is not None and word.isupper():
        return codes
    try:
        return [registry.get(word).code]
    except UsageError:
        pass
    if codes is None:
        raise _fail(text, f"unknown primitive {word!r}")
    return codes


def _parse(text: str) -> list[str]:
    # A stack of open groups; each `)` must be followed by a repeat count.
    stack: list[list[str]] = [[]]
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace() or ch == ",":
            i += 1
        elif ch == "(":
            stack.append([])
            i += 1
        elif ch == ")":
            if len(stack) == 1:
                raise _fail(text, "unbalanced ')'")
            i += 1
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] not in _REPEAT_MARKS:
                raise _fail(text, "a ')' must be followed by a repeat count like 'x4'")
            i += 1
            while i < n and text[i].isspace():
                i += 1
            j = i
            while j < n and text[j].isdigit():
                j += 1
            if j == i:
                raise _fail(text, "missing repeat count after 'x'")
            count = int(text[i:j])
            if count < 1:
                raise _fail(text, "repeat count must be >= 1")
            group = stack.pop()
            if not group:
                raise _fail(text, "empty group '()'")
            stack[-1].extend(group * count)
            i = j
        elif ch.isalpha():
            j = i
            while j < n and text[j].isalpha():
                j += 1
            stack[-1].extend(_letters_to_codes(text[i:j], text))
            i = j
        else:
            raise _fail(text, f"unexpected character {ch!r}")
    if len(stack) != 1:
        raise _fail(text, "unbalanced '('")
    return stack[0]


def parse_pattern(text: str | list[str], max_layers: int | None = None) -> list[str]:
    """Parse a pattern (string or list of codes / names) into one upper-case code per layer."""
    if isinstance(text, (list, tuple)):
        if not all(isinstance(t, str) for t in text):
            raise _fail(str(text), "a pattern list must hold strings")
        text = " ".join(text)
    if not isinstance(text, str):
        raise _fail(str(text), "a pattern must be a string or a list of strings")
    codes = _parse(text)
    if not codes:
        raise _fail(text, "empty pattern")
    if max_layers is not None and len(codes) > max_layers:
        raise _fail(text, f"{len(codes)} layers is more than the maximum of {max_layers}")
    return codes


def format_pattern(codes: list[str]) -> str:
    """The plain code string, e.g. 'AMAMSM'."""
    return "".join(codes)


def _best_repeat(codes: list[str], i: int) -> tuple[int, int]:
    """(unit length, count) of the repeat starting at i that covers the most layers; shortest unit wins."""
    best_u, best_k = 1, 1
    for u in range(1, (len(codes) - i) // 2 + 1):
        unit = codes[i : i + u]
        k = 1
        while codes[i + k * u : i + (k + 1) * u] == unit:
            k += 1
        # a repeat must pay for its brackets: "WW" stays literal, "(M)x3" and "(AM)x2" do not
        worth = k >= 3 or u * k >= 4
        if k >= 2 and worth and u * k > best_u * best_k:
            best_u, best_k = u, k
    return best_u, best_k


def compress_pattern(codes: list[str]) -> str:
    """Greedy run/repeat compression for display: 'AMAMAMAM' -> '(AM)x4', 'AMMM' -> 'A (M)x3'."""
    parts: list[str] = []
    literal = ""
    i = 0
    while i < len(codes):
        u, k = _best_repeat(codes, i)
        if k >= 2:
            if literal:
                parts.append(literal)
                literal = ""
            parts.append(f"({''.join(codes[i : i + u])})x{k}")
            i += u * k
        else:
            literal += codes[i]
            i += 1
    if literal:
        parts.append(literal)
    return " ".join(parts)


def ratios(codes: list[str]) -> dict[str, float]:
    """Fraction of layers per code, in code order, e.g. {'A': 0.5, 'M': 0.5}."""
    if not codes:
        return {}
    counts = Counter(codes)
    return {c: counts[c] / len(codes) for c in sorted(counts)}


# Pure pattern operations of Composer's extrapolation (aira.compose.extrapolate explains them).
def run_length(pattern: str) -> list[tuple[str, int]]:
    runs: list[tuple[str, int]] = []
    for c in pattern:
        if runs and runs[-1][0] == c:
            runs[-1] = (c, runs[-1][1] + 1)
        else:
            runs.append((c, 1))
    return runs


def stretch_pattern(pattern: str, s: float) -> str:
    return "".join(c * math.ceil(n * s - 1e-9) for c, n in run_length(pattern))


def stack_pattern(pattern: str, s: float) -> str:
    whole = math.floor(s + 1e-9)
    rest = s - whole
    tail = stretch_pattern(pattern, rest)[: math.ceil(rest * len(pattern) - 1e-9)] if rest > 1e-9 else ""
    return pattern * whole + tail
