"""PreparedSession: the request each HTTP channel sends, prepared once per URL, must go out as
``session.post`` would send it, and honour the environment as ``session.post`` does (proxies
and NO_PROXY, the CA bundle, .netrc), never follow a redirect, and keep the timeout and the
provider's cookies. The servers are the standard library's, on loopback; the proxy is one that
records the request line it receives (an absolute URI, or CONNECT for HTTPS)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from onetomany.delivery.http import PreparedSession


class Recorder(ThreadingHTTPServer):
    """Answers every request 200 (or as ``answers`` says) and keeps what arrived."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[tuple[int, dict[str, str]]] = []
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.requestline, dict(self.headers.items()), body))
        time.sleep(self.server.delay)
        status, headers = self.server.answers.pop(0) if self.server.answers else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        try:
            self.end_headers()
            self.wfile.write(b"{}")
        except BrokenPipeError:
            pass  # the timeout test's client has gone: nothing to answer

    def do_CONNECT(self) -> None:  # a proxy asked to tunnel HTTPS: record it, refuse it
        self.server.seen.append((self.requestline, dict(self.headers.items()), b""))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serving(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def origin() -> Iterator[Recorder]:
    yield from _serving(Recorder())


@pytest.fixture
def proxy() -> Iterator[Recorder]:
    yield from _serving(Recorder())


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Each test states the environment it needs; none leaks in from the machine.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE"):
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def _session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "X-Token": "t-1"})
    return session


def _authed() -> requests.Session:
    session = _session()
    session.auth = ("api", "key-1")
    return session


def test_each_post_sends_what_session_post_sends(origin: Recorder) -> None:
    prepared = PreparedSession(_authed, timeout=5)
    plain = _authed()
    for data in (
        b'{"a":1}',
        {"To": "+14155550100", "Body": "hi"},
        [("o:tag", "a"), ("o:tag", "b")],
    ):
        for extra in (None, {"webhook-id": "msg_1"}):
            prepared.post(origin.url + "/send", data, headers=extra)
            plain.post(origin.url + "/send", data=data, headers=extra, allow_redirects=False)
    prepared.close()

    ours, theirs = origin.seen[0::2], origin.seen[1::2]
    assert len(ours) == 6
    assert ours == theirs
    assert ours[0][1]["Authorization"].startswith("Basic ")
    assert ours[1][1]["webhook-id"] == "msg_1"
    assert "webhook-id" not in ours[2][1]  # a message's own headers stay its own


def test_http_proxy_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, proxy: Recorder
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    prepared = PreparedSession(_session, timeout=5)

    prepared.post("http://provider.invalid/email", b"{}")
    prepared.post("http://provider.invalid/email", b"{}")

    assert [line for line, _, _ in proxy.seen] == [
        "POST http://provider.invalid/email HTTP/1.1"
    ] * 2


def test_https_proxy_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, proxy: Recorder
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    prepared = PreparedSession(_session, timeout=5)

    with pytest.raises(requests.exceptions.ProxyError):
        prepared.post("https://provider.invalid/email", b"{}")

    assert [line for line, _, _ in proxy.seen] == ["CONNECT provider.invalid:443 HTTP/1.0"]


def test_no_proxy_sends_directly(
    monkeypatch: pytest.MonkeyPatch, origin: Recorder, proxy: Recorder
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    prepared = PreparedSession(_session, timeout=5)

    response = prepared.post(origin.url + "/email", b"{}")

    assert response.status_code == 200
    assert proxy.seen == []
    assert [line for line, _, _ in origin.seen] == ["POST /email HTTP/1.1"]


def test_a_session_that_does_not_trust_the_environment_ignores_its_proxy(
    monkeypatch: pytest.MonkeyPatch, origin: Recorder, proxy: Recorder
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    def untrusting() -> requests.Session:
        session = _session()
        session.trust_env = False  # as the webhook channel's, whose guard a proxy would bypass
        return session

    PreparedSession(untrusting, timeout=5).post(origin.url + "/hook", b"{}")

    assert proxy.seen == []
    assert len(origin.seen) == 1


def test_the_environment_is_read_once_per_open(
    monkeypatch: pytest.MonkeyPatch, origin: Recorder, proxy: Recorder
) -> None:
    prepared = PreparedSession(_session, timeout=5)
    prepared.post(origin.url + "/email", b"{}")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    prepared.post(origin.url + "/email", b"{}")  # the same open: no proxy yet
    prepared.close()
    prepared.open()
    prepared.post(origin.url + "/email", b"{}")

    assert len(origin.seen) == 2
    assert [line for line, _, _ in proxy.seen] == [f"POST {origin.url}/email HTTP/1.1"]


def test_the_ca_bundle_from_the_environment_is_trusted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = trustme.CA()
    server = Recorder()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    url = f"https://127.0.0.1:{server.server_address[1]}/email"
    for running in _serving(server):
        with pytest.raises(requests.exceptions.SSLError):
            PreparedSession(_session, timeout=5).post(url, b"{}")

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        assert PreparedSession(_session, timeout=5).post(url, b"{}").status_code == 200

        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
        assert PreparedSession(_session, timeout=5).post(url, b"{}").status_code == 200
        assert len(running.seen) == 2


def test_netrc_credentials_are_sent_when_the_session_has_no_auth(
    monkeypatch: pytest.MonkeyPatch, origin: Recorder, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ops password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))

    PreparedSession(_session, timeout=5).post(origin.url + "/email", b"{}")
    PreparedSession(_authed, timeout=5).post(origin.url + "/email", b"{}")

    from_netrc, own = (headers["Authorization"] for _, headers, _ in origin.seen)
    assert from_netrc == requests.auth._basic_auth_str("ops", "from-netrc")
    assert own == requests.auth._basic_auth_str("api", "key-1")


def test_a_redirect_is_returned_not_followed(origin: Recorder) -> None:
    origin.answers = [(302, {"Location": "http://169.254.169.254/latest/meta-data"})]

    response = PreparedSession(_session, timeout=5).post(origin.url + "/hook", b"{}")

    assert response.status_code == 302
    assert len(origin.seen) == 1


def test_the_read_timeout_applies(origin: Recorder) -> None:
    origin.delay = 0.5

    with pytest.raises(requests.exceptions.ReadTimeout):
        PreparedSession(_session, timeout=(5, 0.1)).post(origin.url + "/email", b"{}")


def test_cookies_the_provider_sets_go_with_later_requests_as_with_session_post(
    origin: Recorder,
) -> None:
    origin.answers = [(200, {"Set-Cookie": "lb=node-2; Path=/"}), (200, {}), (200, {})]
    prepared = PreparedSession(_session, timeout=5)

    prepared.post(origin.url + "/email", b"{}")
    prepared.post(origin.url + "/email", b"{}")
    prepared.post(origin.url + "/email/batch", b"[]")

    cookies = [headers.get("Cookie") for _, headers, _ in origin.seen]
    assert cookies == [None, "lb=node-2", "lb=node-2"]


def test_close_is_safe_twice_and_a_post_after_it_opens_again(origin: Recorder) -> None:
    prepared = PreparedSession(_session, timeout=5)
    prepared.close()
    prepared.post(origin.url + "/email", b"{}")
    prepared.close()
    prepared.close()

    assert prepared.post(origin.url + "/email", b"{}").status_code == 200
