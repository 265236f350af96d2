"""Public calibration sets: fixed layer patterns on which a proxy's ranking is measured.

A proxy is trustworthy when it ranks the same patterns the same way across seeds and at a larger
scale, so the set must contain patterns that really differ: the share of attention (and of Mamba-2)
runs from 0 to 100%, and patterns with the same mix appear in different orders (spread evenly,
bunched at the input, at the output, or in the middle), since the position of a mixer matters too.

Patterns are generated from (counts, ordering) recipes rather than listed, so the same set exists
at any depth (`layers=4` for tests, 16 for the real proxies). The order of the list is chosen so that
a prefix (`--limit N`) is itself spread over the shares: the "even" ordering of every mix comes first,
then the other orderings.
"""

from __future__ import annotations

from aira.errors import UsageError

ORDERINGS = ("even", "front", "back", "middle")

# Mixes as shares of the layers: (attention, mamba or deltanet); the rest is MLP.
_ATTN_MLP = [
    (0.0, 0.0),
    (1 / 16, 0.0),
    (1 / 8, 0.0),
    (1 / 4, 0.0),
    (3 / 8, 0.0),
    (1 / 2, 0.0),
    (5 / 8, 0.0),
    (3 / 4, 0.0),
    (7 / 8, 0.0),
    (1.0, 0.0),
]
_ATTN_MLP_MAMBA = [
    (0.0, 1.0),
    (1.0, 0.0),
    (0.0, 1 / 2),
    (1 / 2, 0.0),
    (1 / 16, 7 / 16),
    (1 / 8, 3 / 8),
    (1 / 4, 1 / 4),
    (1 / 4, 1 / 2),
    (0.0, 1 / 4),
    (1 / 2, 1 / 2),
    (0.0, 3 / 4),
    (1 / 8, 5 / 8),
    (0.0, 0.0),
    (1 / 8, 7 / 8),
    (3 / 8, 1 / 8),
]
MIN_SIZE = 24


def _spread(n: int, layers: int) -> list[int]:
    """`n` positions spread evenly over `layers` (Bresenham-style, starting mid-interval)."""
    return sorted({int((i + 0.5) * layers / n) for i in range(n)}) if n else []


def place(counts: dict[str, int], filler: str, layers: int, ordering: str) -> str:
    """A pattern with `counts[c]` layers of each code `c` and `filler` elsewhere, in an ordering:
    even = spread over the depth; front / back = bunched at the input / output end; middle = centred."""
    if ordering not in ORDERINGS:
        raise UsageError(f"unknown ordering {ordering!r}; valid: {', '.join(ORDERINGS)}")
    if sum(counts.values()) > layers:
        raise UsageError(f"counts {counts} exceed {layers} layers")
    out = [filler] * layers
    if ordering == "even":
        # the rarest code takes its evenly spread slots first, the next fills free slots evenly
        free = list(range(layers))
        for code, n in sorted(counts.items(), key=lambda kv: kv[1]):
            picks = [free[i] for i in _spread(n, len(free))]
            for p in picks:
                out[p] = code
            free = [f for f in free if f not in picks]
        return "".join(out)
    block = "".join(c * n for c, n in sorted(counts.items()))
    start = {"front": 0, "back": layers - len(block), "middle": (layers - len(block)) // 2}[ordering]
    out[start : start + len(block)] = block
    return "".join(out)


# space -> (recipes, the code of the recipes' second share); attn-mlp-deltanet reuses the Mamba mixes
# with Gated DeltaNet in Mamba's place: both are recurrent token mixers that hybrids interleave with
# a few attention layers, so the same spread of shares and orderings applies.
_SPACES = {
    "attn-mlp": (_ATTN_MLP, "S"),
    "attn-mlp-mamba": (_ATTN_MLP_MAMBA, "S"),
    "attn-mlp-deltanet": (_ATTN_MLP_MAMBA, "D"),
}


def _recipes(space: str) -> tuple[list[tuple[float, float]], str]:
    if space not in _SPACES:
        raise UsageError(f"no calibration set for space {space!r}; valid: {', '.join(_SPACES)}")
    return _SPACES[space]


def calibration_patterns(space: str = "attn-mlp-mamba", layers: int = 16) -> list[str]:
    """The calibration set of a space at `layers` layers: distinct patterns, a diverse prefix first."""
    if layers < 4:
        raise UsageError(f"calibration patterns need at least 4 layers, got {layers}")
    seen: dict[str, None] = {}
    recipes, second = _recipes(space)
    for ordering in ORDERINGS:
        for a_share, s_share in recipes:
            n_a, n_s = round(a_share * layers), round(s_share * layers)
            if a_share > 0 and n_a == 0:
                n_a = 1  # keep "a little attention" distinct from none at shallow depths
            n_s = min(n_s, layers - n_a)
            counts = {c: n for c, n in (("A", n_a), (second, n_s)) if n}
            seen.setdefault(place(counts, "M", layers, ordering), None)
    return list(seen)


def load_patterns(spec: str, space: str, layers: int = 16) -> list[str]:
    """`spec` is "calibration" (the space's set) or a file with one pattern per line (# comments)."""
    from pathlib import Path

    from aira.models import parse_pattern
    from aira.userfiles import read_text

    if spec == "calibration":
        return calibration_patterns(space, layers)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--patterns must be 'calibration' or a file of patterns; no file {spec!r}")
    pats = []
    for line in read_text(path, "--patterns").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pats.append("".join(parse_pattern(line)))
    if len(pats) < 3:
        raise UsageError(f"{spec} has {len(pats)} patterns; a ranking needs at least 3")
    if len(set(pats)) != len(pats):
        raise UsageError(f"{spec} lists a pattern twice; each pattern must appear once")
    return pats
