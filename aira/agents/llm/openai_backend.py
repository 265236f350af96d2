"""OpenAI Chat Completions through the official `openai` SDK, for OpenAI itself and for any server
that speaks the same API (vLLM, Ollama, llama.cpp server, SGLang, OpenRouter).

Differences between the two uses: OpenAI's current models take `max_completion_tokens` and reject
a temperature other than the default on reasoning models, so the official backend sends the limit
under that name and omits temperature 1.0 (the API default); compatible servers get the classic
`max_tokens` and always the temperature asked for (their defaults differ per model).
"""

from __future__ import annotations

from aira.agents.llm.backend import BackendLLM, Reply
from aira.agents.llm.ledger import CostLedger
from aira.agents.llm.retry import MalformedResponse, RetryPolicy
from aira.errors import UsageError


class OpenAILLM(BackendLLM):
    def __init__(self, model: str, *, api_key: str, base_url: str | None = None, timeout_s: float = 120,
                 compatible: bool = False, ledger: CostLedger | None = None,
                 retry: RetryPolicy | None = None):
        spec = f"openai-compatible/{model}@{base_url}" if compatible else f"openai/{model}"
        super().__init__(spec, model, ledger=ledger, retry=retry)
        self.compatible = compatible
        self.auth_hint = ("check OPENAI_COMPATIBLE_API_KEY (or OPENAI_API_KEY)" if compatible
                          else "check OPENAI_API_KEY")
        try:
            import openai
        except ImportError as e:
            raise UsageError("the openai package is not installed: pip install 'aira[llm]'") from e
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout_s,
                                    max_retries=0)

    def _request(self, system, messages, max_tokens, temperature) -> Reply:
        msgs = ([{"role": "system", "content": system}] if system else []) + messages
        kwargs: dict = {}
        if self.compatible:
            kwargs["max_tokens"] = max_tokens
            kwargs["temperature"] = temperature
        else:
            kwargs["max_completion_tokens"] = max_tokens
            if temperature != 1.0:
                kwargs["temperature"] = temperature
        resp = self.client.chat.completions.create(model=self.model, messages=msgs, **kwargs)
        try:
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            u = resp.usage  # some local servers omit usage
            return Reply(text=text, model=resp.model or self.model,
                         input_tokens=(u.prompt_tokens or 0) if u else 0,
                         output_tokens=(u.completion_tokens or 0) if u else 0)
        except (AttributeError, TypeError, IndexError, KeyError) as e:  # JSON, but not a completion
            raise MalformedResponse(f"not a chat completion ({type(e).__name__}: {e})") from e
