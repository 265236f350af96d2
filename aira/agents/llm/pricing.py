"""Prices of LLM calls, in USD per million input / output tokens.

The built-in table holds list prices the vendors published for a handful of current models (late
2025; check the vendors' pricing pages before trusting a budget to them). Extend or override it with
`register_price(...)`, with `load_prices(path)`, or with a JSON file named by the `AIRA_PRICES`
environment variable, read on first use:

    {"my-finetune": [0.5, 1.5], "gpt-5": {"input": 1.25, "output": 10}}

Model names are matched after normalising: a provider prefix ("anthropic/", "openai/") and a date
or "-latest" suffix are dropped, and "." is treated as "-" (OpenRouter writes "claude-sonnet-4.5").
An unknown model costs 0, with one warning per model, so a local server never blocks a run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from aira.errors import UsageError

log = logging.getLogger("aira.llm")


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


# (input, output) USD per million tokens, standard (non-batch, non-cached) list prices.
_BUILTIN: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "o3": (2.0, 8.0),
    "o4-mini": (1.1, 4.4),
}

_lock = threading.RLock()  # re-entrant: loading the env file registers prices under it
_prices: dict[str, Price] = {}
_env_loaded = False
_warned: set[str] = set()

_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def normalize(model: str) -> str:
    name = model.strip().lower().rsplit("/", 1)[-1].replace(".", "-")
    return _SUFFIX.sub("", name)


def register_price(model: str, input_per_mtok: float, output_per_mtok: float) -> None:
    """Add or replace the price of `model` (USD per million input / output tokens)."""
    if input_per_mtok < 0 or output_per_mtok < 0:
        raise UsageError(f"price of {model!r} must not be negative")
    with _lock:
        _prices[normalize(model)] = Price(float(input_per_mtok), float(output_per_mtok))
        _warned.discard(normalize(model))


def load_prices(path: str | Path) -> int:
    """Register every price in a JSON file {model: [in, out] | {"input": in, "output": out}}.
    Returns how many were read."""
    p = Path(path)
    try:
        table = json.loads(p.read_text())
    except OSError as e:
        raise UsageError(f"cannot read the price file {p}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise UsageError(f"the price file {p} is not valid JSON: {e}") from e
    if not isinstance(table, dict):
        raise UsageError(f"the price file {p} must hold a JSON object {{model: [input, output]}}")
    for model, v in table.items():
        if isinstance(v, dict) and {"input", "output"} <= v.keys():
            v = [v["input"], v["output"]]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
            raise UsageError(f"the price file {p}: {model!r} needs [input, output] USD per million tokens")
        register_price(model, v[0], v[1])
    return len(table)


def ensure_loaded() -> None:
    """Fill the table (built-ins, then the AIRA_PRICES file) once. make_llm calls it so that a bad
    price file stops a run before its first call rather than after it."""
    global _env_loaded
    with _lock:
        if _env_loaded:
            return
        for name, (i, o) in _BUILTIN.items():
            _prices.setdefault(normalize(name), Price(i, o))
        path = os.environ.get("AIRA_PRICES")
        if path:
            load_prices(path)
        _env_loaded = True


def lookup(model: str) -> Price | None:
    """The price of `model`, or None when it is not in the table (no warning)."""
    ensure_loaded()
    with _lock:
        return _prices.get(normalize(model))


def cost_usd(model: str, input_tokens: int, output_tokens: int, *, alias: str | None = None) -> float:
    """USD for one call. `alias` is a second name to try (the requested model when the response
    names a dated snapshot the table lacks). Unknown: 0.0 and a one-time warning."""
    price = lookup(model) or (lookup(alias) if alias else None)
    if price is None:
        key = normalize(model)
        with _lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            log.warning("no price known for model %r: its calls count as $0 (add one with "
                        "register_price or the AIRA_PRICES file)", model)
        return 0.0
    return price.cost(input_tokens, output_tokens)


def known_models() -> dict[str, Price]:
    ensure_loaded()
    with _lock:
        return dict(_prices)
