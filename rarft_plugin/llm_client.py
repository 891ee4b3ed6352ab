"""One client for every LLM call (dataset building, evaluation judges): any OpenAI-compatible
chat-completions endpoint (`base_url`: a hosted API, a local vLLM or llama.cpp server).

- bounded concurrency (asyncio semaphore);
- retries with exponential backoff and jitter on 429, 5xx, timeouts and connection errors;
  other errors (400, 401, ...) fail at once with the endpoint's message. Failures come in two
  kinds: `RequestError` (the endpoint refused this request: HTTP 400 / 413 / 422, e.g. a prompt
  too long for the model) and `EndpointError` (the endpoint is unreachable, overloaded past the
  retries, or refuses every request: bad key, unknown model). Neither is an answer of the model:
  pipelines must not store them as results;
- JSON mode (`json_mode=True`): asks for `response_format={"type": "json_object"}`; a server that
  answers HTTP 400 to it is asked again without it, and the client stops sending it
  (`usage.json_mode_refused`);
- `check_endpoint()`: fails at once with an `EndpointError` when nothing answers at `base_url`;
- an optional on-disk cache (`rarft_plugin.journal.Journal`) keyed by the request's content,
  so a rerun, or a resumed run after a crash, pays for nothing twice;
- token usage accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rarft_plugin.journal import Journal

__all__ = [
    "RETRYABLE_STATUS",
    "LLMError",
    "RequestError",
    "EndpointError",
    "REQUEST_STATUS",
    "JSON_OBJECT",
    "Usage",
    "request_key",
    "ChatClient",
]

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMError(RuntimeError):
    """An LLM request that failed for good (after retries, or with a non-retryable status)."""


class RequestError(LLMError):
    """The endpoint refused this one request (HTTP 400 / 413 / 422): other requests may succeed."""


class EndpointError(LLMError):
    """The endpoint cannot serve requests now: unreachable, overloaded past the retries, or refusing all."""


# Statuses that are about one request's content rather than about the endpoint.
REQUEST_STATUS = {400, 413, 422}
JSON_OBJECT = {"type": "json_object"}


@dataclass
class Usage:
    requests: int = 0
    cached: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    json_mode_refused: bool = False  # the server answered HTTP 400 to response_format: asked without it


def request_key(model: str, messages: Sequence[dict], params: dict) -> str:
    """Content hash of a request: the cache key."""
    blob = json.dumps({"model": model, "messages": list(messages), "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _reply_text(response: object) -> str:
    try:
        return response["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"malformed chat-completions response: {str(response)[:200]}") from None


class ChatClient:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 8,
        max_attempts: int = 6,
        timeout_s: float = 120.0,
        backoff_s: float = 1.0,
        cache_path: str | Path | None = None,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        json_mode: bool = False,
    ):
        self.model = model
        self.base_url = base_url
        self.params = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens)) if v is not None}
        # Part of the cache key as asked for: a reply got after the server refused JSON mode is still
        # the answer to "this prompt, JSON mode wanted".
        self.json_mode = json_mode
        self._send_json_mode = json_mode
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        # Losing the last cached replies to a crash only repeats those requests: no fsync per reply.
        self.cache = Journal(cache_path, durable=False) if cache_path else None
        self.usage = Usage()

    def _open(self):
        """An HTTP client bound to the running event loop."""
        from openai import AsyncOpenAI

        return AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=self._timeout_s)

    @contextlib.asynccontextmanager
    async def session(self):
        """`async with chat.session() as ask: text = await ask(messages)` (bounded, cached, retried).

        `ask(messages, attempt=n)` caches under a separate key per attempt, so asking again after a
        reply failed validation reaches the endpoint instead of the cache.
        """
        semaphore = asyncio.Semaphore(self._concurrency)
        async with self._open() as http:
            yield lambda messages, attempt=0: self.complete(http, messages, semaphore, attempt=attempt)

    async def complete(self, client, messages: Sequence[dict], semaphore: asyncio.Semaphore, attempt: int = 0) -> str:
        """The reply text of one chat request (cached, retried)."""
        key = request_key(
            self.model,
            messages,
            {
                **self.params,
                **({"attempt": attempt} if attempt else {}),
                **({"response_format": JSON_OBJECT} if self.json_mode else {}),
            },
        )
        if self.cache is not None and key in self.cache:
            self.usage.cached += 1
            return self.cache.get(key)
        async with semaphore:
            text = await self._request(client, list(messages))
        if self.cache is not None:
            self.cache.put(key, text)
        return text

    async def _request(self, client, messages: list[dict]) -> str:
        import openai

        attempt = 0
        json_mode = self._send_json_mode
        while attempt < self._max_attempts:
            attempt += 1
            try:
                # The plain JSON route of the same client: the typed `chat.completions.create` spends
                # milliseconds of CPU per request validating and converting, a bottleneck at scale.
                body = {
                    "model": self.model,
                    "messages": messages,
                    **self.params,
                    **({"response_format": JSON_OBJECT} if json_mode else {}),
                }
                response = await client.post("/chat/completions", cast_to=object, body=body)
                self.usage.requests += 1
                usage = response.get("usage") or {}
                self.usage.prompt_tokens += usage.get("prompt_tokens") or 0
                self.usage.completion_tokens += usage.get("completion_tokens") or 0
                if self._send_json_mode and not json_mode:  # answered once asked without JSON mode
                    self._send_json_mode = False
                    self.usage.json_mode_refused = True
                return _reply_text(response)
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                reason = type(error).__name__
            except openai.APIStatusError as error:
                if error.status_code == 400 and json_mode:
                    # Servers without JSON mode (older llama.cpp, some proxies) refuse the field: ask
                    # again without it (costing no attempt); once that succeeds, stop sending it.
                    json_mode = False
                    attempt -= 1
                    continue
                if error.status_code in REQUEST_STATUS:
                    raise RequestError(f"{self.base_url}: HTTP {error.status_code}: {error.message}") from None
                if error.status_code not in RETRYABLE_STATUS:
                    raise EndpointError(f"{self.base_url}: HTTP {error.status_code}: {error.message}") from None
                reason = f"HTTP {error.status_code}"
            self.usage.failures[reason] = self.usage.failures.get(reason, 0) + 1
            if attempt == self._max_attempts:
                raise EndpointError(f"{self.base_url}: gave up after {attempt} attempts (last: {reason})")
            self.usage.retries += 1
            await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def check_endpoint(self, timeout_s: float = 10.0) -> None:
        """Raise EndpointError at once when nothing answers at `base_url` (connection refused, DNS, timeout).

        Asks `GET /models`; any HTTP answer, even an error status, shows that a server is there (not
        every OpenAI-compatible server lists its models), so only transport failures count.
        """
        import openai
        from openai import AsyncOpenAI

        async with AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0, timeout=timeout_s) as http:
            try:
                await http.get("/models", cast_to=object)
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                raise EndpointError(f"{self.base_url}: no answer ({type(error).__name__}: {error})") from None
            except openai.APIStatusError:
                pass

    async def complete_many(self, requests: Sequence[Sequence[dict]], *, desc: str = "LLM") -> list[str | LLMError]:
        """Replies in request order; a request that fails for good yields its LLMError (others go on)."""
        from tqdm.asyncio import tqdm

        async with self.session() as ask:

            async def one(messages):
                try:
                    return await ask(messages)
                except LLMError as error:
                    return error

            return await tqdm.gather(*(one(m) for m in requests), desc=desc, disable=len(requests) < 20)

    def run_many(self, requests: Sequence[Sequence[dict]], *, desc: str = "LLM") -> list[str | LLMError]:
        """`complete_many` from synchronous code."""
        return asyncio.run(self.complete_many(requests, desc=desc))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
