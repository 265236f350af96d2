"""Registry of primitives: a one-letter code and a name map to a module class.

Every primitive has the contract `(B, L, D) -> (B, L, D)`, is built as `cls(cfg: ModelConfig)`,
and exposes two class methods used by the analytic counts:
  - `num_params(cfg) -> int`: exact parameter count of one layer (without the block's norm);
  - `flops_per_token(cfg, seq_len) -> float`: training FLOPs (forward + backward = 3x forward)
    per token for one layer, including sequence-length terms.
Users register new primitives with `@register("X", "name")`. A promoted mechanism (an LRA
`attention.py` made a Compose primitive, aira/models/mechanism.py) is registered with `origin` set (where
its code came from); a later promotion may replace it under the same code, a built-in never.
"""

from __future__ import annotations

from dataclasses import dataclass

from aira.errors import UsageError


@dataclass(frozen=True)
class PrimitiveInfo:
    code: str
    name: str
    cls: type
    origin: dict | None = None  # promoted mechanisms: their source's sha256 and where it came from


_BY_CODE: dict[str, PrimitiveInfo] = {}
_BY_NAME: dict[str, PrimitiveInfo] = {}


def register(code: str, name: str, *, origin: dict | None = None):
    """Class decorator: register a primitive under a one-letter upper-case code and a name; with `origin`
    (a promoted mechanism) it replaces an earlier promoted primitive of that code or name."""
    if len(code) != 1 or not code.isalpha() or not code.isupper():
        raise ValueError(f"primitive code must be one upper-case letter, got {code!r}")

    def deco(cls):
        for table, key in ((_BY_CODE, code), (_BY_NAME, name.lower())):
            old = table.get(key)
            if old is not None and old.cls is not cls and not (origin is not None and old.origin is not None):
                raise ValueError(f"primitive {key!r} is already registered to {old.cls.__name__}")
        for table, key in ((_BY_CODE, code), (_BY_NAME, name.lower())):
            old = table.get(key)
            if old is not None and old.origin is not None:  # a promoted one being replaced: drop both keys
                _BY_CODE.pop(old.code, None)
                _BY_NAME.pop(old.name, None)
        info = PrimitiveInfo(code, name.lower(), cls, origin)
        _BY_CODE[code] = info
        _BY_NAME[name.lower()] = info
        return cls

    return deco


def drop_promoted() -> None:
    """Forget every promoted primitive (registered with an origin); the built-ins stay. For a process that
    runs one search after another (a notebook, the test suite): a run registers the ones it uses."""
    for info in [i for i in _BY_CODE.values() if i.origin is not None]:
        _BY_CODE.pop(info.code, None)
        _BY_NAME.pop(info.name, None)


def _ensure_builtins() -> None:
    # Importing the package registers the built-in primitives.
    import aira.models.primitives  # noqa: F401


def get(code_or_name: str) -> PrimitiveInfo:
    _ensure_builtins()
    key = code_or_name.strip()
    info = _BY_CODE.get(key) or _BY_NAME.get(key.lower())
    if info is None:
        raise UsageError(f"unknown primitive {key!r}; valid: {valid_codes()}")
    return info


def all_primitives() -> list[PrimitiveInfo]:
    _ensure_builtins()
    return sorted(_BY_CODE.values(), key=lambda i: i.code)


def valid_codes() -> str:
    """E.g. 'A (attn), M (mlp), S (mamba), W (swa)'."""
    _ensure_builtins()
    return ", ".join(f"{i.code} ({i.name})" for i in sorted(_BY_CODE.values(), key=lambda i: i.code))
