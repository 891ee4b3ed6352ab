"""A real HTTP server on 127.0.0.1 that speaks the chat-completions API, scripted per test.

    with ChatServer(responder) as server:
        client = ChatClient(base_url=server.url, model="m")

`responder(request_json) -> str | Truncated | Fault` returns the assistant's text (`Truncated`: cut
at max_tokens), or a `Fault` to inject (an HTTP status with a body, a delay, or a dropped
connection). Every request is recorded in `server.requests`. Bounded: it serves only loopback and
stops with the context. `port` pins the port (to bring a server up where a client already points);
`free_port()` finds one nothing listens on (an endpoint that is down).

`one_at_a_time=True` behaves like llama.cpp's Python server with one model: requests wait in a
queue and are answered one by one (`latency_s` each), `GET /v1/models` waits in the same queue,
and a request whose client has closed the connection by its turn is dropped, not computed
(counted in `server.abandoned`). `server.peak` is the most requests the server held at once
(answering or queued). `props` is served as llama.cpp's `GET /props` (else 404).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    status: int = 500
    body: str = '{"error": {"message": "injected"}}'
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Truncated:
    """A reply cut at the request's max_tokens (finish_reason "length")."""

    text: str


class ChatServer:
    def __init__(
        self,
        responder: Callable[[dict], str | Truncated | Fault],
        latency_s: float = 0.0,
        port: int = 0,
        *,
        one_at_a_time: bool = False,
        props: dict | None = None,
    ):
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[dict] = []
        self.abandoned = 0
        self.peak = 0
        self._held = 0
        self._lock = threading.Lock()
        # one model, one request at a time (a lock that queues), or no queue at all
        self._model = threading.Lock() if one_at_a_time else contextlib.nullcontext()
        self._one_at_a_time = one_at_a_time
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes; with Nagle on, the client's delayed ACK stalls
            # every keep-alive response by ~40 ms
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.rstrip("/") == "/props" and props is not None:
                    self._send(200, json.dumps(props).encode())
                elif self.path.rstrip("/") == "/v1/models":
                    with server._model:  # llama.cpp's Python server holds the model for this too
                        self._send(200, json.dumps({"object": "list", "data": [{"id": "m"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(request)
                    server._held += 1
                    server.peak = max(server.peak, server._held)
                try:
                    with server._model:
                        if server._one_at_a_time and self._client_gone():
                            with server._lock:
                                server.abandoned += 1
                            self.close_connection = True
                            return
                        self._answer(request)
                finally:
                    with server._lock:
                        server._held -= 1

            def _client_gone(self) -> bool:
                """The client closed its connection while the request waited (readable with nothing to read)."""
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)

            def _answer(self, request):
                if server.latency_s:
                    time.sleep(server.latency_s)
                answer = server.responder(request)
                if isinstance(answer, Fault):
                    if answer.delay_s:
                        time.sleep(answer.delay_s)
                    if answer.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self._send(answer.status, answer.body.encode())
                    return
                finish_reason = "length" if isinstance(answer, Truncated) else "stop"
                answer = answer.text if isinstance(answer, Truncated) else answer
                body = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": finish_reason,
                            "message": {"role": "assistant", "content": answer},
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
                self._send(200, json.dumps(body).encode())

            def _send(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _QuietServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up (its timeout, a cancelled run) closes the socket under a reply: not news."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def free_port() -> int:
    """A loopback port nothing listens on (just released by the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def user_text(request: dict) -> str:
    return request["messages"][-1]["content"]


def system_text(request: dict) -> str:
    return request["messages"][0]["content"]
