"""The HUD lets in only the paired display: each browser and network attack on a real server over loopback is
refused, the pairing cookie is HttpOnly and SameSite=Strict, rotation revokes, floods are refused without stalling
the session, and the secret never shows up in logs, the audit log or crash reports. No model: the session's
assistant is never asked for model work here (reading a thread and confirming a dictated reply need none)."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from device.assistant.core import Result
from device.glasses import pairing
from device.glasses.hud import HudSecurity, create_app
from device.glasses.session import GlassesSession
from device.glasses.tls import load_or_create as load_certificate
from device.messages.inbox import Message, group_threads, read_feed
from device.messages.store import MessageStore
from device.privacy import stored_texts
from device.privacy.crash import build_report
from device.privacy.egress import AuditLog, EgressGate
from device.privacy.transport import OutboxTransport
from device.tasks import Task

uvicorn = pytest.importorskip("uvicorn")

SAMPLE = Path(__file__).resolve().parents[1] / "device" / "data" / "sample_inbox.jsonl"
CANARY = "CANARY-7f3a the bank code is 4471"
EVIL = "https://evil.example"


class NoModel:
    """Model work is not what these tests are about: a notification is the message itself, anything else fails."""

    def notify(self, message: Message) -> Result:
        return Result(Task.NOTIFY, message.text, "no-model", 0.0, 0.0)

    def __getattr__(self, name: str):
        raise AssertionError(f"the HUD security tests asked the assistant for {name}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hud:
    def __init__(self, tmp: Path, **security) -> None:
        threads = group_threads(read_feed(SAMPLE))
        threads["Mum"].add(Message("Mum", "Mum", CANARY, threads["Mum"].messages[-1].ts))
        for t in threads.values():
            t.mark_read()
        self.tmp = tmp
        self.store = MessageStore(tmp / "hud.db", shared=True)
        self.store.add([m for t in threads.values() for m in t.messages])
        self.gate = EgressGate(lambda: stored_texts(self.store), AuditLog(tmp / "audit.jsonl"),
                               OutboxTransport(tmp / "outbox"))
        self.session = GlassesSession(NoModel(), self.gate, threads, on_message=lambda m: self.store.add([m]))
        self.pairing = pairing.load_or_create(tmp)
        self.port = _free_port()
        self.tls = security.pop("certificate", None)
        self.security = HudSecurity(self.pairing, tuple(pairing.allowed_hosts("127.0.0.1")), tls=bool(self.tls),
                                    **security)
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.session, self.security), host="127.0.0.1", port=self.port,
                                log_level="debug", access_log=True, log_config=None,
                                ssl_certfile=str(self.tls.cert) if self.tls else None,
                                ssl_keyfile=str(self.tls.key) if self.tls else None)
        self.server = uvicorn.Server(config)
        self.worker = threading.Thread(target=self.server.run, daemon=True)
        self.worker.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.worker.is_alive():
                raise RuntimeError("the HUD server did not start")
            time.sleep(0.05)

    def client(self, paired: bool = True, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.pairing.token}"} if paired else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.worker.join(timeout=10)
        self.store.close()


@pytest.fixture
def hud(tmp_path):
    h = Hud(tmp_path)
    yield h
    h.stop()


def test_the_three_reported_attacks_are_refused(hud):
    with hud.client(paired=False) as stranger, hud.client() as display:
        # 1. a "simple" cross-site POST any web page can send without a preflight
        r = stranger.post("/say", content=b'{"utterance": "read mum"}',
                          headers={"Content-Type": "text/plain", "Origin": EVIL})
        assert r.status_code == 403 and CANARY not in r.text
        r = stranger.post("/say", content=b'{"utterance": "read mum"}', headers={"Content-Type": "text/plain"})
        assert r.status_code == 401 and CANARY not in r.text
        # … and even holding the secret, a foreign origin or a non-JSON body is refused
        assert display.post("/say", json={"utterance": "read mum"}, headers={"Origin": EVIL}).status_code == 403
        assert display.post("/say", content=b'{"utterance": "read mum"}',
                            headers={"Content-Type": "text/plain"}).status_code == 415
        assert display.post("/say", json={"utterance": "read mum"},
                            headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert hud.session.screen.view == "idle", "no refused request changed the glasses"
        # 2. DNS rebinding: the page's own host name in the Host header
        for client in (stranger, display):
            r = client.get("/screen", headers={"Host": f"evil.example:{hud.port}"})
            assert r.status_code == 400 and CANARY not in r.text
        # 3. a message injected into the inbox
        fake = {"thread": "Mum", "sender": "Mum", "text": "I lost my card, send me the bank code"}
        r = stranger.post("/feed", json=fake, headers={"Origin": EVIL})
        assert r.status_code == 403
        r = display.post("/feed", json=fake)
        assert r.status_code in (404, 405), "/feed is off without --dev-feed, paired or not"
        assert all(m.text != fake["text"] for m in hud.session.threads["Mum"].messages)
        # the paired display itself works, and sees the canary only now
        shown = display.post("/say", json={"utterance": "read mum"})
        assert shown.status_code == 200 and CANARY in shown.text


def test_nothing_of_the_wearers_is_reachable_without_the_secret(hud):
    with hud.client() as display:
        assert CANARY in display.post("/say", json={"utterance": "read mum"}).text
    probes = [("GET", p) for p in ("/", "/screen", "/events", "/static/hud.js", "/static/index.html")]
    probes += [("POST", p) for p in ("/say", "/key", "/feed", "/pair")]
    with hud.client(paired=False) as stranger:
        for method, path in probes:
            for headers in ({}, {"Cookie": f"{pairing.COOKIE}=guess"}, {"Authorization": "Bearer guess"}):
                r = stranger.request(method, path, headers=headers, json={"utterance": "read mum", "token": "guess"}
                                     if method == "POST" else None)
                assert r.status_code in (401, 403), (method, path, headers, r.status_code)
                assert CANARY not in r.text and "Mum" not in r.text, (method, path)
    assert not (hud.tmp / "outbox").exists() or not list((hud.tmp / "outbox").iterdir())


def test_pairing_sets_a_strict_httponly_cookie_and_rotation_revokes_it(tmp_path):
    hud = Hud(tmp_path)
    with hud.client(paired=False) as browser:
        assert browser.get("/", headers={"Accept": "text/html"}).status_code == 401
        page = browser.get("/pair")  # the link's #secret never reaches the server: the page posts it
        assert page.status_code == 200 and "location.hash" in page.text and hud.pairing.token not in page.text
        assert hud.pairing.url("http://h:1") == f"http://h:1/pair#{hud.pairing.token}"
        assert browser.post("/pair", json={"token": hud.pairing.token[:-1] + "x"}).status_code == 401
        assert browser.post("/pair", content=json.dumps({"token": hud.pairing.token}),
                            headers={"Content-Type": "text/plain"}).status_code == 415
        assert browser.post("/pair", json={"token": hud.pairing.token}, headers={"Origin": EVIL}).status_code == 403
        paired = browser.post("/pair", json={"token": hud.pairing.token})
        assert paired.status_code == 200
        cookie = paired.headers["set-cookie"]
        assert cookie.startswith(f"{pairing.COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; under --tls it is Secure (below)
        assert browser.get("/").status_code == 200  # the cookie now rides along
        assert browser.get("/screen").json()["view"] == "idle"
        # a navigation from elsewhere (a QR scanner) may open the pairing page; nothing else may come from there
        assert browser.get("/pair", headers={"Sec-Fetch-Site": "cross-site",
                                             "Sec-Fetch-Mode": "navigate"}).status_code == 200
        assert browser.get("/screen", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        old = browser.cookies[pairing.COOKIE]
    hud.stop()
    assert pairing.load_or_create(tmp_path).token == hud.pairing.token, "the secret is kept across restarts"
    rotated = pairing.load_or_create(tmp_path, rotate=True)  # `glassmate hud --rotate-token`
    assert rotated.created and rotated.token != hud.pairing.token
    restarted = Hud(tmp_path)
    try:
        assert restarted.pairing.token == rotated.token
        with restarted.client(paired=False) as browser:
            assert browser.get("/screen", headers={"Cookie": f"{pairing.COOKIE}={old}"}).status_code == 401
        with restarted.client() as display:
            assert display.get("/screen").status_code == 200
    finally:
        restarted.stop()


def test_a_flood_is_refused_and_the_display_keeps_working(tmp_path):
    hud = Hud(tmp_path, burst=20, rate_per_s=5.0, max_streams=2)
    try:
        with hud.client(paired=False) as stranger:
            codes = [stranger.get("/screen").status_code for _ in range(60)]
        assert set(codes) == {401, 429} and codes.count(429) >= 30
        with hud.client() as display:
            assert display.get("/screen").status_code == 200, "a stranger's flood does not use up the display's share"
            codes = [display.post("/key", json={"key": "right"}).status_code for _ in range(40)]
            assert 429 in codes and codes[0] == 200
            time.sleep(1.0)
            assert display.post("/key", json={"key": "esc"}).status_code == 200, "the session answers again"
            assert display.post("/say", content=b"{" + b" " * 70_000 + b"}",
                                headers={"Content-Type": "application/json"}).status_code == 413
            streams = [display.stream("GET", "/events") for _ in range(3)]
            opened = [s.__enter__() for s in streams]
            try:
                assert [r.status_code for r in opened] == [200, 200, 503]
            finally:
                for s in streams:
                    s.__exit__(None, None, None)
    finally:
        hud.stop()


def test_the_secret_never_reaches_logs_the_audit_log_or_crash_reports(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    hud = Hud(tmp_path, dev_feed=True)
    token = hud.pairing.token
    try:
        with hud.client(paired=False) as browser:
            assert browser.post("/pair", json={"token": token + "x"}).status_code == 401
            assert browser.post("/pair", json={"token": token}).status_code == 200
            assert browser.post("/say", json={"utterance": "reply to mum saying see you at one"}).status_code == 200
            assert browser.post("/key", json={"key": "enter"}).json()["toast"] == "Sent to Mum"
            assert browser.post("/feed", json={"thread": "Mum", "sender": "Mum", "text": "ok"}).status_code == 200
        try:
            pairing.load_or_create(tmp_path).matches(None)
            raise RuntimeError(f"failed while serving {hud.pairing!r}")
        except RuntimeError as exc:
            report = build_report(exc)
    finally:
        hud.stop()
    server_log = "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records
                            if not r.name.startswith(("httpx", "httpcore")))  # the test's client logs what it got
    assert "POST /pair" in server_log, "the access log was on: it saw the requests, not the secret"
    assert token not in server_log
    assert token not in json.dumps(report)
    assert [e["kind"] for e in AuditLog(tmp_path / "audit.jsonl").entries()] == ["outgoing-reply"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_beyond_loopback_needs_tls_or_an_explicit_insecure_lan(tmp_path, monkeypatch):
    from device.cli import app

    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["hud", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    said = " ".join(result.stderr.split())
    assert "--tls" in said and "--insecure-lan" in said
    assert not (tmp_path / "state").exists(), "refused before anything was made or loaded"


def test_tls_serves_the_paired_display_with_a_secure_cookie(tmp_path):
    certificate = load_certificate(tmp_path, pairing.allowed_hosts("127.0.0.1"))
    assert load_certificate(tmp_path, pairing.allowed_hosts("127.0.0.1")) == certificate, "made once, then kept"
    assert len(certificate.fingerprint.split(":")) == 32
    hud = Hud(tmp_path, certificate=certificate)
    try:
        trust = ssl.create_default_context(cafile=str(certificate.cert))
        with hud.client(paired=False, verify=trust) as browser:
            paired = browser.post("/pair", json={"token": hud.pairing.token})
            assert paired.status_code == 200 and "Secure" in paired.headers["set-cookie"]
        with hud.client(verify=trust) as display:
            assert display.post("/say", json={"utterance": "read mum"}, headers={"Origin": hud.url}).status_code \
                == 200
            assert display.post("/say", json={"utterance": "read mum"},
                                headers={"Origin": f"http://127.0.0.1:{hud.port}"}).status_code == 403
        with pytest.raises(httpx.ConnectError):  # a client that does not trust this certificate gets nothing
            httpx.get(f"{hud.url}/screen", timeout=10)
    finally:
        hud.stop()
