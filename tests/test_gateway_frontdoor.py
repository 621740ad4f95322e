"""The front door against attacks from a browser or a raw socket: cross-site posts, foreign Origins,
DNS rebinding, endless or slow headers, and the failed-auth limiter."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway_harness import GatewayProcess
from openai_schema import errors
from upstream import ScriptedUpstream

from mofaclaw.gateway.limiter import FailureLimiter

StartGateway = Callable[..., GatewayProcess]
USER = [{"role": "user", "content": "hi"}]
BODY = json.dumps({"model": "mofaclaw", "messages": USER}).encode()
KEY = "k" * 32
BAD_KEY = "b" * 32


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert errors("ErrorResponse", body) == [], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _port(gw: GatewayProcess) -> int:
    return int(gw.base.rsplit(":", 1)[1])


def test_cross_site_form_and_text_posts_are_415_and_reach_nothing(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway()
    url = gw.url + "/chat/completions"
    # What an <form> or a no-cors fetch() on any web page can send to localhost without a preflight.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        _error(httpx.post(url, content=BODY, headers={"Content-Type": content_type}), 415, "unsupported_media_type")
    _error(httpx.post(url, content=BODY, headers={"Content-Type": ""}), 415)
    assert upstream.requests == []
    ok = httpx.post(url, content=BODY, headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "echo: hi"
    assert len(upstream.requests) == 1


def test_foreign_origin_is_403_while_same_origin_and_cors_origins_work(
        start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway('[gateway]\ncors_origins = ["http://localhost:3000"]\n')
    url = gw.url + "/chat/completions"
    for origin in ("http://evil.example", "null", "http://localhost:3001", "https://localhost:3000"):
        _error(httpx.post(url, json={"model": "mofaclaw", "messages": USER}, headers={"Origin": origin}),
               403, "origin_not_allowed")
        _error(httpx.get(gw.url + "/models", headers={"Origin": origin}), 403)
    preflight = httpx.options(url, headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert upstream.requests == []

    port = _port(gw)
    same_origin = [(gw.base, None), (f"http://localhost:{port}", f"localhost:{port}")]
    for origin, host in same_origin:  # a page the gateway itself serves
        headers = {"Origin": origin, **({"Host": host} if host else {})}
        response = httpx.post(url, json={"model": "mofaclaw", "messages": USER}, headers=headers)
        assert response.status_code == 200, (origin, response.text)
    allowed = httpx.post(url, json={"model": "mofaclaw", "messages": USER}, headers={"Origin": "http://localhost:3000"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert len(upstream.requests) == 3


def test_dns_rebinding_host_is_421_on_loopback(start_gateway: StartGateway, upstream: ScriptedUpstream) -> None:
    gw = start_gateway('[gateway]\nallowed_hosts = ["agent.example.com"]\n')
    port = _port(gw)
    # A page on evil.example whose name now resolves to 127.0.0.1: same origin to the browser.
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    for path in ("/health", "/v1/models", "/openapi.json"):
        _error(httpx.get(gw.base + path, headers=rebound), 421, "misdirected_request")
    _error(httpx.post(gw.url + "/chat/completions", json={"model": "mofaclaw", "messages": USER}, headers=rebound),
           421)
    for bad in ("127.0.0.1.evil.example", "localhost:x", "[::1]evil", "localhost.evil.example:80"):
        _error(httpx.get(gw.base + "/health", headers={"Host": bad}), 421)
    assert upstream.requests == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]:8080", "LOCALHOST", "agent.example.com:443"):
        assert httpx.get(gw.base + "/health", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_still_apply_on_a_public_address(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\nallowed_hosts = ["agent.example.com"]\n',
                       args=("--host", "0.0.0.0"))
    base = gw.base.replace("0.0.0.0", "127.0.0.1")
    auth = {"Authorization": f"Bearer {KEY}"}
    _error(httpx.get(base + "/v1/models", headers={**auth, "Host": "evil.example"}), 421)
    assert httpx.get(base + "/v1/models", headers={**auth, "Host": "agent.example.com"}).status_code == 200
    gw.stop()
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\n', args=("--host", "0.0.0.0"))
    base = gw.base.replace("0.0.0.0", "127.0.0.1")
    assert httpx.get(base + "/v1/models", headers={**auth, "Host": "anything.example"}).status_code == 200


def test_a_valid_key_is_never_locked_out_by_failures(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\n')
    for _ in range(10):
        _error(httpx.get(gw.url + "/models", headers={"Authorization": f"Bearer {BAD_KEY}"}), 401)
    _error(httpx.get(gw.url + "/models", headers={"Authorization": f"Bearer {BAD_KEY}"}), 429)
    good = httpx.get(gw.url + "/models", headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200 and good.json()["data"][0]["id"] == "mofaclaw"
    _error(httpx.get(gw.url + "/models"), 429)  # the failures still count for the wrong ones


def test_forwarded_for_rotation_does_not_evade_the_limiter(start_gateway: StartGateway) -> None:
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\n')
    statuses = [httpx.get(gw.url + "/models", headers={"Authorization": f"Bearer {BAD_KEY}",
                                                       "X-Forwarded-For": f"203.0.113.{i}"}).status_code
                for i in range(12)]
    assert statuses == [401] * 10 + [429] * 2
    gw.stop()

    # Behind a configured proxy, the forwarded address is the client: one client's failures lock
    # out that client only.
    gw = start_gateway(f'[gateway]\napi_keys = ["{KEY}"]\ntrusted_proxies = ["127.0.0.0/8"]\n')
    wrong = {"Authorization": f"Bearer {BAD_KEY}"}
    for _ in range(10):
        _error(httpx.get(gw.url + "/models", headers={**wrong, "X-Forwarded-For": "203.0.113.7"}), 401)
    _error(httpx.get(gw.url + "/models", headers={**wrong, "X-Forwarded-For": "203.0.113.7"}), 429)
    _error(httpx.get(gw.url + "/models", headers={**wrong, "X-Forwarded-For": "203.0.113.8"}), 401)


def test_the_failure_table_is_bounded_and_pruned() -> None:
    limiter = FailureLimiter(limit=3, window=60, max_clients=100)
    for i in range(1000):
        limiter.record(f"10.0.{i // 256}.{i % 256}", now=float(i) / 100)
    assert len(limiter) == 100  # a flood of addresses cannot grow the table
    for _ in range(3):
        limiter.record("192.0.2.1", now=11.0)
    assert limiter.retry_after("192.0.2.1", now=12.0) == 59
    limiter.record("192.0.2.2", now=200.0)  # every other entry expired: swept, not only when they return
    assert len(limiter) == 1 and limiter.retry_after("192.0.2.1", now=200.0) is None
    # an IPv6 client cannot rotate through its own /64
    for i in range(3):
        limiter.record(f"2001:db8::{i + 1}", now=300.0)
    assert limiter.retry_after("2001:db8::ffff", now=300.0) is not None


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def _health_on(sock: socket.socket) -> bytes:
    """One GET /health on an open keep-alive connection: the whole answer, the connection left open."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        if not chunk:
            break  # closed by the server: the caller's assertion says so
        answer += chunk
    return answer


def test_an_endless_header_is_cut_off_without_growing_the_server(start_gateway: StartGateway) -> None:
    gw = start_gateway()
    assert gw.proc is not None
    port = _port(gw)
    assert httpx.get(gw.base + "/health").status_code == 200
    before = _rss_kb(gw.proc.pid)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        chunk = b"a" * 65536
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_all(sock)
    assert sent < 64 * 1024 * 1024, "the server read 64 MiB of one header"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert _rss_kb(gw.proc.pid) - before < 5 * 1024
    assert httpx.get(gw.base + "/health").status_code == 200  # and it still serves


def test_too_many_or_too_large_headers_are_431(start_gateway: StartGateway) -> None:
    gw = start_gateway("[gateway]\nmax_headers = 20\nmax_header_bytes = 8192\n")
    port = _port(gw)
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(30))
    large = f"X-Large: {'a' * 9000}\r\n"
    for extra in (many, large):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
            answer = _read_all(sock)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert errors("ErrorResponse", json.loads(body)) == []
    headers = {f"X-H{i}": str(i) for i in range(10)}
    assert httpx.get(gw.base + "/health", headers=headers).status_code == 200


@pytest.mark.parametrize("opening", [b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"])
def test_headers_that_never_finish_time_out(start_gateway: StartGateway, opening: bytes) -> None:
    gw = start_gateway("[gateway]\nheader_timeout = 0.5\n")
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=15) as sock:
        sock.sendall(opening)
        answer = _read_all(sock)  # returns when the server closes the connection
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code": "request_timeout"' in answer
    # a keep-alive connection's later requests get the same deadline from their first byte
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=15) as sock:
        assert _health_on(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_dripped_slowly_times_out_and_reaches_nothing(
    start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gw = start_gateway("[gateway]\nbody_timeout = 0.5\n")
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=15) as sock:
        sock.sendall(head + BODY[:5])  # the headers on time, then the body stops coming
        answer = _read_all(sock)  # returns when the server closes the connection
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert errors("ErrorResponse", json.loads(body)) == []
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert upstream.requests == []  # no turn started
    # a body sent whole is answered as ever, and a request without a body is never timed
    with socket.create_connection(("127.0.0.1", _port(gw)), timeout=15) as sock:
        assert _health_on(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(1.0)  # idle past body_timeout on a keep-alive connection (time must pass): still served
        again = _health_on(sock)
        assert again.startswith(b"HTTP/1.1 200 "), again[:200]
    answer_ok = httpx.post(gw.base + "/v1/chat/completions", content=BODY,
                           headers={"Content-Type": "application/json"}, timeout=15)
    assert answer_ok.status_code == 200, answer_ok.text
