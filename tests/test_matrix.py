"""The Matrix connector against the real thing: `matrix-synapse` on 127.0.0.1 (SQLite), `glassmate hud --matrix` as
its own process with the test model, the display in Debian's Chromium, and a friend on a second Matrix client.

The friend writes three messages in an end-to-end encrypted room; glassmate is killed (SIGKILL) after the first
and restarted before the second; the card and the catch-up show on the display; the wearer picks a draft and
confirms it while the homeserver is down; when the server is back the friend receives exactly that text, once.
Every process is started here, stopped by PID, and bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from device.messages.store import MessageStore
from device.privacy.egress import AuditLog

pytest.importorskip("nio", reason="the matrix extra is not installed")
pytest.importorskip("synapse", reason="matrix-synapse (the matrix-test extra) is not installed")
from nio import AsyncClient, AsyncClientConfig, RoomMessageText  # noqa: E402

from tests.synapse_server import Synapse, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "build" / "matrix"
GLASSMATE = [str(Path(sys.executable).parent / "glassmate")]
TIMEOUT_S = 180.0
TIMEOUT_MS = int(TIMEOUT_S * 1000)
ENCRYPTED = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
FRIEND_SAYS = ["Boulderwelt is closed on Saturday for a competition.",
               "Shall we go on Sunday at 10 instead?",
               "Can you bring the spare chalk bag? Mine is torn."]

pytestmark = [pytest.mark.model,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test does)")]


def wait_for(check, what: str, timeout: float = TIMEOUT_S, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Friend:
    """The other person: a plain Matrix client with its own encryption keys, driven step by step."""

    def __init__(self, url: str, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        # its own loop in its own thread: Playwright's sync API runs a loop in the test's thread
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="friend", daemon=True)
        self.thread.start()
        self.client = AsyncClient(url, "@friend:localhost", store_path=str(folder),
                                  config=AsyncClientConfig(encryption_enabled=True))
        self.room_id = ""

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    async def _settle(self) -> None:
        c = self.client
        if c.should_upload_keys:
            await c.keys_upload()
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())
        await c.send_to_device_messages()

    async def _sync(self, timeout_ms: int = 0):
        resp = await self.client.sync(timeout=timeout_ms, full_state=self.client.next_batch is None)
        await self._settle()
        return resp

    def register(self) -> None:
        self.run(self.client.register("friend", "friend-password", device_name="friend-phone"))
        self.run(self._sync())

    def open_encrypted_room(self, invite: str) -> str:
        resp = self.run(self.client.room_create(name="Climbing crew", invite=[invite], initial_state=ENCRYPTED))
        self.room_id = resp.room_id
        return self.room_id

    def wearer_joined(self, wearer: str) -> bool:
        self.run(self._sync(500))
        room = self.client.rooms.get(self.room_id)
        return bool(room) and wearer in room.users and wearer not in room.invited_users

    def say(self, text: str) -> str:
        self.run(self._sync())
        resp = self.run(self.client.room_send(self.room_id, "m.room.message", {"msgtype": "m.text", "body": text},
                                              ignore_unverified_devices=True))
        return resp.event_id

    def received_from(self, sender: str) -> list[str]:
        """Every text `sender` wrote in the room, decrypted, from the room's whole history."""
        self.run(self._sync())
        texts, token = [], self.client.next_batch
        while True:
            resp = self.run(self.client.room_messages(self.room_id, start=token, limit=100))
            texts += [e.body for e in resp.chunk if isinstance(e, RoomMessageText) and e.sender == sender]
            if not resp.chunk or not resp.end or resp.end == token:
                return texts
            token = resp.end

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Glasses:
    """`glassmate hud --matrix` as the wearer runs it: its own process, stopped (or killed) by PID."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = os.environ | {"GLASSMATE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*GLASSMATE, *args], cwd=REPO, env=self.env, input=stdin, capture_output=True,
                              text=True, timeout=TIMEOUT_S)

    def start(self) -> None:
        self.starts += 1
        log = (self.home / f"hud-{self.starts}.log").open("w")
        self.process = subprocess.Popen([*GLASSMATE, "hud", "--matrix", "--port", str(self.port), "--model",
                                         "smollm2-135m", "--threads", "2", "--no-llm-commands"], cwd=REPO,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._up, "the HUD to answer")

    def _up(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the HUD exited: {(self.home / f'hud-{self.starts}.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(self.url + "/pair", timeout=2):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # no goodbye: the sync position is whatever was written
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def stored(self) -> list[tuple[str, str]]:
        with MessageStore(self.home / "state" / "glassmate.db") as store:
            return [(m.sender, m.text) for _, m in store.messages()]


@pytest.fixture
def world(tmp_path, model_spec):
    server = Synapse(tmp_path / "synapse").start()
    home = tmp_path / "home"
    (home / "state").mkdir(parents=True)
    (home / "models").symlink_to(REPO / "models", target_is_directory=True)  # the fetched test model
    glasses = Glasses(home, free_port())
    friend = Friend(server.url, tmp_path / "friend")
    try:
        yield server, glasses, friend
    finally:
        glasses.stop()
        friend.close()
        server.stop()


def test_encrypted_chat_in_restart_and_outage_reply_lands_once(world):
    sync_api = pytest.importorskip("playwright.sync_api")
    server, glasses, friend = world
    friend.register()
    register = glasses.cli("connect", "matrix", "--homeserver", server.url, "--user", "wearer", "--password-stdin",
                           stdin="not-the-password\n")
    assert register.returncode != 0 and "refused" in register.stderr, "no account yet: a clear refusal"
    wearer = AsyncClient(server.url, "@wearer:localhost")
    friend.run(wearer.register("wearer", "wearer-password"))
    friend.run(wearer.close())
    connected = glasses.cli("connect", "matrix", "--homeserver", server.url, "--user", "@wearer:localhost",
                            "--password-stdin", stdin="wearer-password\n")
    assert connected.returncode == 0, connected.stderr
    state = glasses.home / "state"
    on_disk = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert b"wearer-password" not in on_disk, "the password is never kept"
    token_free = [p for p in state.rglob("*") if p.is_file() and b"syt_" in p.read_bytes()]
    assert token_free == [], f"the access token is sealed, never in a plain file: {token_free}"

    from device.glasses import pairing
    secret = pairing.load_or_create(state)
    glasses.start()
    friend.open_encrypted_room("@wearer:localhost")
    wait_for(lambda: friend.wearer_joined("@wearer:localhost"), "glassmate to accept the invitation")

    friend.say(FRIEND_SAYS[0])
    wait_for(lambda: ("friend", FRIEND_SAYS[0]) in glasses.stored(), "the first message in the store")
    glasses.kill()
    friend.say(FRIEND_SAYS[1])  # while glassmate is down
    glasses.start()
    wait_for(lambda: ("friend", FRIEND_SAYS[1]) in glasses.stored(), "the message sent while it was down")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 560})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(secret.url(glasses.url))
            page.wait_for_url(f"{glasses.url}/")
            page.wait_for_function("document.getElementById('status').textContent === 'connected'")

            friend.say(FRIEND_SAYS[2])
            # a short message is its own notification; within two minutes of the chat's last card it folds into
            # that card ("1 more from Climbing crew")
            page.wait_for_function(f"!document.getElementById('card').hidden && "
                                   f"(document.getElementById('card-summary').textContent === "
                                   f"{json.dumps(FRIEND_SAYS[2])} || document.getElementById('card-summary')"
                                   f".textContent.startsWith('1 more from Climbing crew'))")
            assert page.text_content("#card-sender") == "friend"
            page.screenshot(path=str(ARTIFACTS / "1-card.png"))

            page.keyboard.press("Enter")  # open the chat: catch-up and three drafts
            page.wait_for_function("document.querySelectorAll('#chips li').length === 3")
            summary = page.text_content("#thread-summary") or ""
            assert summary.strip(), "the catch-up shows"
            shown = page.locator("#messages li").all_text_contents()
            assert shown == [f"friend: {t}" for t in FRIEND_SAYS], "each message once, in order"
            chips = page.locator("#chips li").all_text_contents()
            page.screenshot(path=str(ARTIFACTS / "2-thread.png"))
            page.keyboard.press("ArrowRight")
            page.wait_for_selector("#chips li:nth-child(2).selected")
            page.keyboard.press("Enter")
            page.wait_for_selector("#confirm:not([hidden])")
            chosen = chips[1].split(". ", 1)[1]
            assert page.text_content("#confirm-text") == chosen

            server.stop()  # the homeserver goes away while the reply waits for confirmation
            page.keyboard.press("Enter")  # confirm
            page.wait_for_function("document.getElementById('display').dataset.view === 'sent'")
            # the connector may or may not have seen the outage yet: either way the wearer is told the truth
            assert page.text_content("#toast") in ("Sent to Climbing crew",
                                                   "Will send to Climbing crew when the connection is back")
            page.wait_for_function("document.getElementById('connection').textContent.startsWith('Matrix:')")
            outage = page.text_content("#connection")
            page.screenshot(path=str(ARTIFACTS / "3-outage.png"))
            server.start()
            page.wait_for_function("document.getElementById('connection').textContent === ''")
        finally:
            browser.close()

    assert "reconnecting" in outage or "waiting" in outage, outage
    received = wait_for(lambda: friend.received_from("@wearer:localhost"), "the reply at the friend's client")
    time.sleep(3)  # a second copy, if one were coming, has time to land
    assert friend.received_from("@wearer:localhost") == [chosen], "exactly that text, once"
    sent = [e for e in AuditLog(glasses.home / "state" / "audit.jsonl").entries() if e["kind"] == "outgoing-reply"]
    assert [(e["destination"], e["allowed"]) for e in sent] == [("matrix-homeserver", True)]
    assert received == [chosen]
    stored = glasses.stored()
    assert [t for s, t in stored if s == "friend"] == FRIEND_SAYS, "nothing lost, nothing twice"
    assert [t for s, t in stored if s == "me"] == [chosen], "the reply stored once (its echo recognised)"
    status = json.loads(glasses.cli("connect", "status", "--json").stdout)
    assert status["matrix"]["queued_replies"] == 0 and status["matrix"]["chats"] == ["Climbing crew"]
