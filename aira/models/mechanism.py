"""A promoted mechanism: an LRA `attention.py` (agent-written or a user's) as a Compose primitive.

LRA's contract (aira/tasks/lra/model.py) is `class Attention(nn.Module)` with `__init__(self, d_model,
n_heads, max_len, **kwargs)` and `forward(self, x, key_padding_mask)`, bidirectional. A Compose layer is a
causal mixer `(B, L, D) -> (B, L, D)` built as `cls(cfg)`. `promoted_primitive` wraps the file's class
so that it is built with the extra keyword `causal=True` (LRA's files take **kwargs; a mechanism that
honours it lets no token read a later one) at the model's width, heads and `max_seq_len`, and called with
an all-False padding mask. Whether it really is causal is checked before a run (aira/tasks/promoted.py).

Counts are measured, not stated: `num_params(cfg)` builds the module (on the meta device where its
constructor allows, so a 3B width costs nothing) and counts its parameters; `flops_per_token(cfg, L)`
runs one forward of batch 1 and length L under torch's FLOP counter (aira.models.flops), on meta
tensors where every op allows, else on CPU, and multiplies by 3 for training (every primitive's
convention). Both are memoised per width and length, so aggregation, extrapolation and scaling ask freely.
That class executes the source, so only sandboxes (and `aira export`) build it.

The harness registers `stub_primitive` instead: the same code, name and origin, counts read from a memo
that a sandboxed child fills (aira/tasks/promoted.py measures them with the class above), and no way to
build a module: the source is never executed in the process that holds it. Its docstring is read from
the source's syntax tree (`class_doc`), which runs nothing.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import types

import torch
from torch import Tensor, nn

from aira.errors import UsageError
from aira.models.config import ModelConfig
from aira.models.flops import counted_flops
from aira.models.registry import register

_loaded = 0


def sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def load_source(source: str, label: str) -> type[nn.Module]:
    """Execute `source` as a fresh module and return its `Attention` class; UsageError (one line) if not."""
    global _loaded
    _loaded += 1
    name = f"aira_promoted_{_loaded}"
    module = types.ModuleType(name)
    module.__file__ = label
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        exec(compile(source, label, "exec"), module.__dict__)  # noqa: S102 - importing the mechanism is the point
    except Exception as e:  # noqa: BLE001 - the mechanism's code: any error is reported in one line
        del sys.modules[name]
        where = f" (line {e.lineno})" if isinstance(e, SyntaxError) else ""
        raise UsageError(f"importing {label} failed{where}: {type(e).__name__}: {e}") from None
    cls = module.__dict__.get("Attention")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UsageError(f"{label} must define `class Attention(nn.Module)` (LRA's contract), found "
                         f"{type(cls).__name__ if cls is not None else 'nothing'} named Attention")
    return cls


def describe_origin(origin: dict) -> str:
    """One line: where a promoted mechanism came from."""
    if origin.get("kind") == "design-run":
        score = origin.get("metric")
        scored = f", {origin.get('metric_name', 'score')} {score:.4g}" if isinstance(score, (int, float)) else ""
        return f"design run {origin.get('run')} node {origin.get('node')} ({origin.get('task', '?')}{scored})"
    return f"file {origin.get('path', '?')}"


def _measure(fn):
    """fn(device) on the meta device, else on CPU (a constructor or op that meta tensors do not support)."""
    try:
        return fn(torch.device("meta"))
    except Exception:  # noqa: BLE001 - any failure on meta: measure for real
        return fn(torch.device("cpu"))


def promoted_primitive(code: str, name: str, source: str, origin: dict) -> type[nn.Module]:
    """Register `source`'s Attention as the primitive `code` (replacing an earlier promotion of it)."""
    mechanism = load_source(source, f"{name}.py")
    params: dict[tuple, int] = {}
    flops: dict[tuple, float] = {}
    first_doc = (mechanism.__doc__ or "").strip().splitlines()
    about = f": {first_doc[0]}" if first_doc else ""

    class Promoted(nn.Module):
        def __init__(self, cfg: ModelConfig):
            super().__init__()
            self.inner = mechanism(d_model=cfg.d_model, n_heads=cfg.n_heads, max_len=cfg.max_seq_len, causal=True)

        def forward(self, x: Tensor) -> Tensor:
            return self.inner(x, torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device))

        @classmethod
        def num_params(cls, cfg: ModelConfig) -> int:
            key = (cfg.d_model, cfg.n_heads, cfg.max_seq_len)
            if key not in params:
                def count(device):
                    with device:
                        return sum(p.numel() for p in cls(cfg).parameters())
                params[key] = _measure(count)
            return params[key]

        @classmethod
        def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
            key = (cfg.d_model, cfg.n_heads, cfg.max_seq_len, seq_len)
            if key not in flops:
                def count(device):
                    with device:
                        module = cls(cfg.with_(max_seq_len=max(cfg.max_seq_len, seq_len)))
                        x = torch.zeros(1, seq_len, cfg.d_model)
                    return counted_flops(module, x)
                flops[key] = 3.0 * _measure(count) / seq_len
            return flops[key]

    Promoted.__name__ = Promoted.__qualname__ = f"Promoted{code}"
    Promoted.__doc__ = f"A mechanism promoted from {describe_origin(origin)}{about}"
    Promoted.mechanism, Promoted.source, Promoted.sha256 = mechanism, source, sha256(source)
    Promoted.origin = origin
    register(code, name, origin={**origin, "sha256": sha256(source)})(Promoted)
    return Promoted


def class_doc(source: str) -> str:
    """The first line of the docstring of the source's top-level `class Attention`, without running it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ""
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Attention"), None)
    doc = (ast.get_docstring(cls) or "").strip().splitlines() if cls is not None else []
    return doc[0] if doc else ""


def params_key(cfg: ModelConfig) -> tuple:
    """What a promoted layer's parameter count depends on: it is built from width, heads and max length."""
    return "params", cfg.d_model, cfg.n_heads, cfg.max_seq_len


def flops_key(cfg: ModelConfig, seq_len: int) -> tuple:
    return "flops", cfg.d_model, cfg.n_heads, cfg.max_seq_len, seq_len


def stub_primitive(code: str, name: str, digest: str, origin: dict, about: str, memo: dict,
                   measure) -> type[nn.Module]:
    """Register a promoted mechanism as `code` without executing its source: counts come from `memo`
    (params_key / flops_key -> number), which `measure(cfg, seq_len)` fills on a miss (with both keys of
    that width and length, measured elsewhere); building it raises."""

    class PromotedStub(nn.Module):
        def __init__(self, cfg: ModelConfig):
            raise UsageError(f"primitive {code} ({name}) is a promoted mechanism, and its code runs in sandboxes "
                             f"only: this process holds its counts, not its code, so it cannot build a model with "
                             f"{code} (the training and scoring sandboxes do; `aira export` imports it)")

        @classmethod
        def num_params(cls, cfg: ModelConfig) -> int:
            if params_key(cfg) not in memo:
                measure(cfg, cfg.max_seq_len)
            return memo[params_key(cfg)]

        @classmethod
        def flops_per_token(cls, cfg: ModelConfig, seq_len: int) -> float:
            if flops_key(cfg, seq_len) not in memo:
                measure(cfg, seq_len)
            return memo[flops_key(cfg, seq_len)]

    PromotedStub.__name__ = PromotedStub.__qualname__ = f"Promoted{code}"
    PromotedStub.__doc__ = f"A mechanism promoted from {describe_origin(origin)}{f': {about}' if about else ''}"
    PromotedStub.sha256, PromotedStub.origin, PromotedStub.stub = digest, origin, True
    register(code, name, origin={**origin, "sha256": digest})(PromotedStub)
    return PromotedStub
