"""A real HTTP server on 127.0.0.1 that speaks the chat-completions API, scripted per test.

    with ChatServer(responder) as server:
        client = ChatClient(base_url=server.url, model="m")

`responder(request_json) -> str | Fault` returns the assistant's text, or a `Fault` to inject
(an HTTP status with a body, a delay, or a dropped connection). Every request is recorded in
`server.requests`. Bounded: it serves only loopback and stops with the context. `port` pins the
port (to bring a server up where a client already points); `free_port()` finds one nothing
listens on (an endpoint that is down).
"""

from __future__ import annotations

import json
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


class ChatServer:
    def __init__(self, responder: Callable[[dict], str | Fault], latency_s: float = 0.0, port: int = 0):
        self.responder = responder
        self.latency_s = latency_s
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes; with Nagle on, the client's delayed ACK stalls
            # every keep-alive response by ~40 ms
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.requests.append(request)
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
                body = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request.get("model"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
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
