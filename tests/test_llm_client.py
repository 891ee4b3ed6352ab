import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from support.openai_server import ChatServer, Fault, Truncated, free_port, user_text

from rarft_plugin.journal import Journal
from rarft_plugin.llm_client import ChatClient, EndpointError, LLMError

REQUESTS = [[{"role": "user", "content": f"question {i}"}] for i in range(6)]


def client(server, tmp_path=None, **options):
    return ChatClient(
        base_url=server.url,
        model="m",
        backoff_s=0.01,
        timeout_s=2.0,
        cache_path=tmp_path / "cache.jsonl" if tmp_path else None,
        **options,
    )


def test_replies_come_back_in_order():
    with ChatServer(lambda r: "re: " + user_text(r)) as server:
        replies = client(server).run_many(REQUESTS)
    assert replies == [f"re: question {i}" for i in range(6)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429),
        Fault(status=500),
        Fault(status=502),
        Fault(status=503),
        Fault(drop=True),
        Fault(status=200, delay_s=3.0),
    ],  # a response slower than the client's timeout
    ids=["429", "500", "502", "503", "connection-reset", "timeout"],
)
def test_transient_faults_are_retried(fault):
    seen = {}

    def responder(request):
        key = user_text(request)
        seen[key] = seen.get(key, 0) + 1
        return fault if seen[key] == 1 else "ok"

    with ChatServer(responder) as server:
        chat = client(server)
        assert chat.run_many(REQUESTS[:2]) == ["ok", "ok"]
    assert chat.usage.retries == 2 and all(count == 2 for count in seen.values())


def test_permanent_errors_fail_fast_and_others_go_on():
    def responder(request):
        return Fault(status=400, body='{"error": {"message": "bad request"}}') if "3" in user_text(request) else "ok"

    with ChatServer(responder) as server:
        chat = client(server)
        replies = chat.run_many(REQUESTS)
    assert isinstance(replies[3], LLMError) and "HTTP 400" in str(replies[3])
    assert [r for i, r in enumerate(replies) if i != 3] == ["ok"] * 5
    assert chat.usage.retries == 0


def test_retries_are_bounded():
    with ChatServer(lambda r: Fault(status=503)) as server:
        chat = client(server, max_attempts=3)
        (reply,) = chat.run_many(REQUESTS[:1])
    assert isinstance(reply, LLMError) and "after 3 attempts" in str(reply)


def test_cache_pays_once(tmp_path):
    with ChatServer(lambda r: "cached " + user_text(r)) as server:
        first = client(server, tmp_path).run_many(REQUESTS)
        again = client(server, tmp_path)
        assert again.run_many(REQUESTS) == first
        assert len(server.requests) == len(REQUESTS) and again.usage.cached == len(REQUESTS)


def test_journal_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.put("a", 1)
        journal.put("b", {"x": [1, 2]})
    with open(path, "a") as handle:
        handle.write('{"key": "c", "val')  # kill -9 in the middle of a write
    reopened = Journal(path)
    assert (reopened.get("a"), reopened.get("b"), "c" in reopened, reopened.torn_lines) == (1, {"x": [1, 2]}, False, 1)
    reopened.put("c", 3)
    reopened.close()
    assert Journal(path).get("c") == 3


def test_kill_9_mid_run_loses_nothing_and_pays_nothing_twice(tmp_path):
    """A real process killed with SIGKILL while requests are in flight; the rerun asks only what is missing."""
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path[:0] = {[str(p) for p in sys.path if p]!r}
        from rarft_plugin.llm_client import ChatClient
        chat = ChatClient(base_url=sys.argv[1], model="m", concurrency=2, cache_path={str(tmp_path / "cache.jsonl")!r})
        replies = chat.run_many([[{{"role": "user", "content": f"q{{i}}"}}] for i in range(40)])
        print(len(replies))
    """)
    )
    with ChatServer(lambda r: "a " + user_text(r), latency_s=0.05) as server:
        process = subprocess.Popen([sys.executable, str(script), server.url], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(server.requests) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        answered_before = len(Journal(tmp_path / "cache.jsonl"))
        assert 0 < answered_before < 40
        before = len(server.requests)
        rerun = subprocess.run([sys.executable, str(script), server.url], capture_output=True, text=True, timeout=120)
        assert rerun.stdout.strip() == "40"
        asked_again = [user_text(r) for r in server.requests[before:]]
    assert len(asked_again) == 40 - answered_before  # finished ones were not paid for again
    values = Journal(tmp_path / "cache.jsonl")
    assert len(values) == 40


def occupy(server, seconds: float) -> threading.Thread:
    """A request of an earlier run that the one-at-a-time server is still answering."""

    def ask():
        with contextlib.suppress(LLMError):
            ChatClient(base_url=server.url, model="m", timeout_s=seconds + 5, concurrency=1).run_many(REQUESTS[:1])

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    return thread


@pytest.mark.parametrize(
    "wait_s, passes",
    [(8.0, True), (1.0, False)],
    ids=["waits-for-the-busy-server", "says-what-it-waited-for"],
)
def test_the_endpoint_check_waits_for_a_busy_server(wait_s, passes):
    said = []
    with ChatServer(lambda r: "ok", latency_s=2.5, one_at_a_time=True) as server:
        earlier = occupy(server, 2.5)
        chat = client(server)
        check = chat.check_endpoint(wait_s, first_s=0.3, say=said.append)
        if passes:
            asyncio.run(check)
        else:
            with pytest.raises(EndpointError, match=r"did not answer GET /models within 1 s \(busy"):
                asyncio.run(check)
        earlier.join()
    assert len(said) == 1 and "accepts connections but has not answered GET /models in 0.3 s: busy" in said[0]


def test_nothing_listening_fails_the_check_at_once():
    chat = ChatClient(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    started = time.monotonic()
    with pytest.raises(EndpointError, match="no answer"):
        asyncio.run(chat.check_endpoint(30.0))
    assert time.monotonic() - started < 10


def test_a_server_that_wants_max_completion_tokens_gets_it():
    refusal = Fault(
        status=400,
        body='{"error": {"message": "Unsupported parameter: \'max_tokens\' is not supported with this model. '
        'Use \'max_completion_tokens\' instead.", "param": "max_tokens", "code": "unsupported_parameter"}}',
    )
    with ChatServer(lambda r: refusal if "max_tokens" in r else "ok") as server:
        chat = client(server, max_tokens=50)
        assert chat.run_many(REQUESTS[:3]) == ["ok"] * 3
    sent = [(r.get("max_tokens"), r.get("max_completion_tokens")) for r in server.requests]
    # every query answered once under the new name; those sent before the first refusal came back asked again
    assert sent[0] == (50, None) and sent.count((None, 50)) == 3 and chat.usage.retries == 0


def test_replies_cut_at_max_tokens_are_counted():
    with ChatServer(lambda r: Truncated('{"a": ') if r["messages"][0]["content"] == "question 0" else "ok") as server:
        chat = client(server, max_tokens=5)
        assert chat.run_many(REQUESTS[:3]) == ['{"a": ', "ok", "ok"]
    assert chat.usage.truncated == 1


def test_leaving_a_session_drops_the_requests_still_queued_at_the_server():
    """Cancelled (an error, Ctrl-C), the client closes its connections: a server that looks drops those requests."""

    async def ask_then_give_up(chat):
        async with chat.session() as ask:
            tasks = [asyncio.create_task(ask(messages)) for messages in REQUESTS[:4]]
            await asyncio.sleep(0.5)  # one answering, three queued at the server
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    with ChatServer(lambda r: "ok", latency_s=1.5, one_at_a_time=True) as server:
        asyncio.run(ask_then_give_up(client(server, concurrency=4)))
        deadline = time.monotonic() + 15
        while server.abandoned < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(server.requests) == 4 and server.abandoned == 3  # only the first was computed
