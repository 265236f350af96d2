"""Bounded retries with exponential back-off and jitter, shared by every HTTP backend.

The SDKs can retry on their own, but their clients are built with `max_retries=0` and the retrying
happens here instead, so that it is logged, bounded the same way for every provider, and testable
(the sleep function is injectable; tests never really wait).

Retried: 408, 409, 429, 5xx (529 "overloaded" included), connection errors, timeouts and a body that
is not the API's JSON (a proxy's HTML page, a reply cut off mid-stream). A `Retry-After` (or
`retry-after-ms`) header is honoured. Anything else (400, 401, 403, 404, 422)
fails at once: retrying a bad request or a bad key only burns time.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aira.agents.llm.errors import LLMAuthError, LLMError

log = logging.getLogger("aira.llm")
T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(kw_only=True)
class RetryPolicy:
    max_retries: int = 5           # retries after the first attempt
    base_s: float = 1.0            # first back-off, doubled each retry
    max_s: float = 60.0            # cap on one back-off
    max_retry_after_s: float = 300.0  # a server asking for longer than this is capped
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        # "Equal jitter": half the exponential step is fixed, half random, so clients that failed
        # together spread out but none retries immediately.
        step = min(self.max_s, self.base_s * 2**retry)
        return step / 2 + self.rng.uniform(0, step / 2)


class MalformedResponse(ValueError):
    """A response whose body parsed but is not what the API returns (a backend raises it while reading
    the reply). Retried like a 5xx: a server or proxy having a bad moment."""


@dataclass
class Failure:
    status: int | None   # HTTP status, None for connection errors and timeouts
    retryable: bool
    message: str
    retry_after: float | None = None
    where: str = ""      # how the message names the failure when there is no status


def _api_message(exc: Any) -> str:
    """The provider's own error text when the body has one, else the SDK's message."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return str(getattr(exc, "message", None) or exc)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (a number or an HTTP date); None if absent."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _is_connection_error(exc: BaseException) -> bool:
    # The SDKs' APIConnectionError / APITimeoutError, matched by name so this module imports neither.
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"APIConnectionError", "APITimeoutError"}) or isinstance(
        exc, (ConnectionError, TimeoutError))


def classify(exc: BaseException) -> Failure | None:
    """What kind of API failure `exc` is; None when it is not one (a bug: let it propagate)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        response = getattr(exc, "response", None)
        retry_after = parse_retry_after(getattr(response, "headers", None))
        retryable = status in RETRYABLE_STATUS or status >= 500
        return Failure(status, retryable, _api_message(exc), retry_after)
    if _is_connection_error(exc):
        kind = "timed out" if "Timeout" in type(exc).__name__ or isinstance(exc, TimeoutError) else \
            "connection failed"
        return Failure(None, True, f"{kind} ({exc})")
    if isinstance(exc, (json.JSONDecodeError, MalformedResponse)):
        return Failure(None, True, str(exc), where="malformed response body")
    return None


def call_with_retries(fn: Callable[[], T], *, policy: RetryPolicy, what: str, auth_hint: str = "") -> T:
    """Call `fn` until it succeeds, retrying transient API failures as `policy` allows.

    `what` names the call in messages (the backend's spec); `auth_hint` is appended to the message
    of a 401 / 403 (e.g. "check ANTHROPIC_API_KEY").
    """
    for retry in range(policy.max_retries + 1):
        try:
            return fn()
        except Exception as exc:
            f = classify(exc)
            if f is None:
                raise
            where = f"HTTP {f.status}" if f.status is not None else f.where or "no response"
            if not f.retryable:
                if f.status in (401, 403):
                    hint = f"; {auth_hint}" if auth_hint else ""
                    raise LLMAuthError(f"{what}: the API rejected the credentials ({where}: {f.message}){hint}",
                                       status=f.status) from exc
                raise LLMError(f"{what}: request failed ({where}: {f.message})", status=f.status) from exc
            if retry == policy.max_retries:
                raise LLMError(f"{what}: gave up after {retry + 1} attempts ({where}: {f.message})",
                               status=f.status, retryable=True) from exc
            wait = policy.delay(retry, f.retry_after)
            log.warning("%s: %s: %s; retry %d/%d in %.1f s", what, where, f.message, retry + 1,
                        policy.max_retries, wait)
            policy.sleep(wait)
    raise AssertionError("unreachable")  # the loop always returns or raises
