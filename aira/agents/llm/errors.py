"""Errors raised by the LLM backends.

`LLMError` is a call that failed for good (after the retries, or at once when retrying cannot help).
`LLMAuthError` is also a `UsageError`: a rejected key is bad user input, so the CLI prints one line
and exits with code 2 instead of recording a node failure for every remaining call.
"""

from __future__ import annotations

from aira.errors import UsageError


class LLMError(RuntimeError):
    """An LLM call failed. `status` is the HTTP status when there was one; `retryable` says whether
    the failure was of a kind that is retried (it is still raised once the retries are used up)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class LLMAuthError(LLMError, UsageError):
    """401 / 403: the key is missing, wrong, or lacks access to the model."""
