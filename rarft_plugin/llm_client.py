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
- `check_endpoint()`: fails at once with an `EndpointError` when nothing answers at `base_url`, and
  waits, saying so, for a server that accepts the connection but is busy (a one-request-at-a-time
  server still working on requests an earlier run left behind);
- concurrency (`concurrency=None`: `server_parallelism()`): a remote endpoint gets `REMOTE_CONCURRENCY`
  requests at once; a local one (localhost, 127.x, ::1) as many as it says it serves at once
  (llama.cpp's `GET /props`: `total_slots`), else one: a local llama.cpp server answers one request
  at a time, and requests beyond that wait in its queue until the client times out and sends them
  again, while the server still works on the abandoned ones;
- `max_tokens` is sent as such; a server that refuses it by name (OpenAI's reasoning models want
  `max_completion_tokens`) is asked again with `max_completion_tokens`. Replies cut at the limit
  (finish_reason "length") are counted (`usage.truncated`);
- leaving a session (an error, Ctrl-C) cancels the requests in flight and closes their connections,
  so a server that notices a closed connection (vLLM, llama.cpp for a request it has not started)
  drops them instead of computing answers nobody reads;
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
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rarft_plugin.journal import Journal

__all__ = [
    "CHECK_TIMEOUT_S",
    "REMOTE_CONCURRENCY",
    "RETRYABLE_STATUS",
    "LLMError",
    "RequestError",
    "EndpointError",
    "REQUEST_STATUS",
    "JSON_OBJECT",
    "Usage",
    "is_local",
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


REMOTE_CONCURRENCY = 16  # requests in flight at once at a remote endpoint, unless asked otherwise
CHECK_TIMEOUT_S = 10.0  # how long check_endpoint waits before saying the server is busy


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
    truncated: int = 0  # replies cut at max_tokens (finish_reason "length")


def request_key(model: str, messages: Sequence[dict], params: dict) -> str:
    """Content hash of a request: the cache key."""
    blob = json.dumps({"model": model, "messages": list(messages), "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def is_local(base_url: str) -> bool:
    """Whether an endpoint runs on this machine (localhost, 127.x, ::1, 0.0.0.0).

    >>> is_local("http://127.0.0.1:8080/v1"), is_local("http://localhost:8000/v1"), is_local("https://api.openai.com/v1")
    (True, True, False)
    """
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")


def _server_root(base_url: str) -> str:
    """The server's root URL: llama.cpp serves /props there, beside /v1."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _reply_text(response: object) -> tuple[str, bool]:
    """(the reply's text, whether it was cut at max_tokens)."""
    try:
        choice = response["choices"][0]
        return choice["message"]["content"] or "", choice.get("finish_reason") == "length"
    except (KeyError, IndexError, TypeError, AttributeError):
        raise EndpointError(f"malformed chat-completions response: {str(response)[:200]}") from None


def _wants_completion_tokens(error: object) -> bool:
    """An HTTP 400 that refuses `max_tokens` and names `max_completion_tokens` instead (OpenAI's reasoning models)."""
    return "max_completion_tokens" in str(getattr(error, "message", "") or "")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ChatClient:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int | None = 8,
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
        self.concurrency = concurrency  # None: `server_parallelism()` decides, when a session starts
        self._max_tokens_name = "max_tokens"
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
        if self.concurrency is None:
            self.concurrency, _ = await self.server_parallelism()
        semaphore = asyncio.Semaphore(self.concurrency)
        # Leaving the block (an error, a cancellation, Ctrl-C) closes the HTTP client: requests still in
        # flight have been cancelled by then, their connections closed, so the server can drop them.
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
                limit_name = self._max_tokens_name  # as sent in this request (others may switch it meanwhile)
                body = {
                    "model": self.model,
                    "messages": messages,
                    **self._sampling(limit_name),
                    **({"response_format": JSON_OBJECT} if json_mode else {}),
                }
                response = await client.post("/chat/completions", cast_to=object, body=body)
                text, truncated = _reply_text(response)
                self.usage.requests += 1
                self.usage.truncated += truncated
                usage = (response.get("usage") if isinstance(response, dict) else None) or {}
                self.usage.prompt_tokens += usage.get("prompt_tokens") or 0
                self.usage.completion_tokens += usage.get("completion_tokens") or 0
                if self._send_json_mode and not json_mode:  # answered once asked without JSON mode
                    self._send_json_mode = False
                    self.usage.json_mode_refused = True
                return text
            except (openai.APITimeoutError, openai.APIConnectionError) as error:
                reason = type(error).__name__
            except openai.APIStatusError as error:
                if error.status_code == 400 and limit_name == "max_tokens" and _wants_completion_tokens(error):
                    # OpenAI's reasoning models refuse max_tokens by name: ask again (costing no attempt)
                    self._max_tokens_name = "max_completion_tokens"
                    attempt -= 1
                    continue
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

    def _sampling(self, limit_name: str) -> dict:
        """The sampling parameters, the reply length limit under `limit_name`."""
        params = dict(self.params)
        if "max_tokens" in params:
            params[limit_name] = params.pop("max_tokens")
        return params

    async def check_endpoint(
        self, wait_s: float | None = None, *, first_s: float = CHECK_TIMEOUT_S, say: Callable[[str], None] = _say
    ) -> None:
        """Raise EndpointError when no server answers at `base_url`.

        Asks `GET /models`; any HTTP answer, even an error status, shows that a server is there (not
        every OpenAI-compatible server lists its models), so only transport failures count. Nothing
        listening (connection refused, DNS) fails at once. A server that accepts the connection but
        does not answer within `first_s` is busy (llama.cpp's Python server answers nothing while it
        computes a reply, e.g. for requests an earlier run left behind): that is said once, and the
        check waits up to `wait_s` in all (default: the request timeout) before it fails naming
        what it waited for.
        """
        import httpx
        import openai
        from openai import AsyncOpenAI

        wait_s = max(self._timeout_s if wait_s is None else wait_s, first_s)
        waits = [first_s] + ([wait_s - first_s] if wait_s > first_s else [])
        async with AsyncOpenAI(base_url=self.base_url, api_key=self._api_key, max_retries=0) as http:
            for number, timeout in enumerate(waits):
                try:
                    await http.get("/models", cast_to=object, options={"timeout": timeout})
                    return
                except openai.APITimeoutError as error:
                    if isinstance(error.__cause__, httpx.ConnectTimeout):  # no connection: nobody is there
                        raise EndpointError(f"{self.base_url}: no answer (connection timed out)") from None
                    if number == 0 and len(waits) > 1:
                        say(
                            f"{self.base_url}: the server accepts connections but has not answered GET /models "
                            f"in {first_s:g} s: busy (with requests of an earlier run?); waiting up to "
                            f"{wait_s - first_s:g} s more"
                        )
                except openai.APIConnectionError as error:
                    raise EndpointError(f"{self.base_url}: no answer ({type(error).__name__}: {error})") from None
                except openai.APIStatusError:
                    return
        raise EndpointError(
            f"{self.base_url}: the server accepts connections but did not answer GET /models within {wait_s:g} s "
            "(busy: still computing replies of an earlier run?); rerun once it is idle, or wait longer with --timeout"
        )

    async def server_parallelism(self) -> tuple[int, str]:
        """How many requests to keep in flight when none was asked for, and why (module docstring)."""
        if not is_local(self.base_url):
            return REMOTE_CONCURRENCY, "a remote endpoint"
        slots = await self._llama_cpp_slots()
        if slots:
            return slots, f"the local server serves {slots} request(s) at once (its /props)"
        return 1, "a local server that does not say how many requests it serves at once (llama.cpp's /props)"

    async def _llama_cpp_slots(self) -> int | None:
        """`total_slots` of llama.cpp's `GET /props` (or `n_parallel`), None from any other server."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as http:
                response = await http.get(f"{_server_root(self.base_url)}/props")
                props = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(props, dict):
            return None
        settings = props.get("default_generation_settings")
        slots = props.get("total_slots", settings.get("n_parallel") if isinstance(settings, dict) else None)
        return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None

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
