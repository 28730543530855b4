"""The Matrix connector's handling of what a chat does besides new messages, against a real `matrix-synapse` on
127.0.0.1: an invitation is accepted, an edit replaces the stored text, a deletion removes the message from the
store and the search index, a membership change shows nothing, the first sync's backlog arrives quietly, and a
stale token stops the connector with a clear state instead of a loop. No model is loaded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from device.connectors import matrix
from device.connectors.ledger import Ledger
from device.messages.store import MessageStore

pytest.importorskip("nio", reason="the matrix extra is not installed")
pytest.importorskip("synapse", reason="matrix-synapse (the matrix-test extra) is not installed")
from nio import AsyncClient, AsyncClientConfig  # noqa: E402

from tests.synapse_server import Synapse  # noqa: E402

TIMEOUT_S = 60.0
ENCRYPTED = [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]


def wait_for(check, what: str, timeout: float = TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    """A Matrix client on a loop of its own thread."""

    def __init__(self, url: str, user: str, folder):
        folder.mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.c = AsyncClient(url, f"@{user}:localhost", store_path=str(folder),
                             config=AsyncClientConfig(encryption_enabled=True))
        self.user = user

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    async def _sync(self):
        await self.c.sync(timeout=0, full_state=self.c.next_batch is None)
        if self.c.should_upload_keys:
            await self.c.keys_upload()
        if self.c.should_query_keys:
            await self.c.keys_query()
        if self.c.should_claim_keys:
            await self.c.keys_claim(self.c.get_users_for_key_claiming())
        await self.c.send_to_device_messages()

    def sync(self):
        self.run(self._sync())

    def send(self, room: str, content: dict) -> str:
        self.sync()
        return self.run(self.c.room_send(room, "m.room.message", content, ignore_unverified_devices=True)).event_id

    def close(self):
        self.run(self.c.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def server(tmp_path):
    hs = Synapse(tmp_path / "synapse").start()
    yield hs
    hs.stop()


def test_edits_deletions_membership_and_backlog(server, tmp_path):
    friend = Client(server.url, "friend", tmp_path / "friend")
    other = Client(server.url, "other", tmp_path / "other")
    for c in (friend, other):
        c.run(c.c.register(c.user, f"{c.user}-pw"))
    wearer = AsyncClient(server.url, "@wearer:localhost")
    friend.run(wearer.register("wearer", "wearer-pw"))
    friend.run(wearer.close())
    friend.sync()
    room = friend.run(friend.c.room_create(name="Flat 4B", invite=["@wearer:localhost"],
                                           initial_state=ENCRYPTED)).room_id
    # the backlog: written before the wearer's glasses had keys, so they cannot read it — and say so
    before_login = friend.send(room, {"msgtype": "m.text", "body": "Bins go out tonight"})

    store = MessageStore(tmp_path / "state" / "glassmate.db", shared=True)
    matrix.login(store, tmp_path / "state", server.url, "@wearer:localhost", "wearer-pw")
    got: list[tuple[list[str], bool]] = []
    edits, deletions, states = [], [], []
    conn = matrix.MatrixConnector(store, tmp_path / "state",
                                  deliver=lambda ms, notify: got.append(([m.text for m in ms], notify)),
                                  on_edit=lambda old, new: edits.append((old.text, new.text)),
                                  on_delete=lambda m: deletions.append(m.text), on_state=states.append)
    conn.start()
    try:
        wait_for(lambda: conn.owns("Flat 4B"), "the invitation to be accepted")
        wait_for(lambda: any(n for _, n in got) or got, "the backlog")
        first = friend.send(room, {"msgtype": "m.text", "body": "Who has the spare key, me or Dev?"})
        wait_for(lambda: any("spare key" in t for ts, _ in got for t in ts), "a new message")
        assert got[-1][1] is True, "a new message notifies"

        friend.send(room, {"msgtype": "m.text", "body": "* Who has the spare key, you or Dev?",
                           "m.new_content": {"msgtype": "m.text", "body": "Who has the spare key, you or Dev?"},
                           "m.relates_to": {"rel_type": "m.replace", "event_id": first}})
        wait_for(lambda: edits, "the edit")
        texts = [m.text for _, m in store.messages()]
        assert "Who has the spare key, you or Dev?" in texts and "Who has the spare key, me or Dev?" not in texts
        assert not any(t.startswith("* ") for t in texts), "the edit's fallback body is not a message"

        # the deleted message's search vector goes with it
        rid = Ledger(store, matrix.SOURCE).message_of(before_login)
        assert rid is not None
        store.save_vectors([(rid, b"\x00" * 16)], "test-embedder")
        friend.run(friend.c.room_redact(room, before_login, reason="wrong chat"))
        wait_for(lambda: deletions, "the deletion")
        assert deletions == [matrix.UNDECRYPTABLE]
        assert matrix.UNDECRYPTABLE not in [m.text for _, m in store.messages()]
        assert list(store.vectors("test-embedder")) == []

        n_messages = len(list(store.messages()))
        friend.run(friend.c.room_invite(room, "@other:localhost"))
        other.sync()
        other.run(other.c.join(room))
        other.send(room, {"msgtype": "m.text", "body": "Hi all, I'm the new flatmate"})
        wait_for(lambda: any("new flatmate" in t for ts, _ in got for t in ts), "the new member's message")
        senders = [m.sender for _, m in store.messages()]
        assert len(senders) == n_messages + 1, "a join is no message; the joiner's message is"
    finally:
        conn.stop()
        friend.close()
        other.close()
    assert got[0] == ([matrix.UNDECRYPTABLE], False), "the backlog arrives quietly; a locked message shows as such"
    assert all(s is None or s.startswith("Matrix:") for s in states)

    # a token the server no longer knows: a clear state, no retry loop
    Ledger(store, matrix.SOURCE).put("account", matrix.account(store).to_json() | {"access_token": "syt_revoked"})
    stale = matrix.MatrixConnector(store, tmp_path / "state", deliver=lambda ms, n: None, on_state=states.append)
    stale.start()
    stale._thread.join(TIMEOUT_S)
    assert not stale._thread.is_alive()
    assert "signed out" in states[-1]
    store.close()


def test_login_refusal_and_unreachable_server_are_clear(tmp_path):
    store = MessageStore(tmp_path / "glassmate.db")
    with pytest.raises(matrix.MatrixError, match="cannot reach"):
        matrix.login(store, tmp_path, "http://127.0.0.1:9", "@wearer:localhost", "pw")
    assert matrix.account(store) is None
    with pytest.raises(matrix.MatrixError, match="no Matrix account"):
        matrix.MatrixConnector(store, tmp_path, deliver=lambda ms, n: None)


def test_backoff_doubles_to_a_cap_and_honours_retry_after():
    b = matrix.Backoff(start=1.0, cap=8.0)
    waits = [b.next() for _ in range(6)]
    assert 0.8 <= waits[0] <= 1.2 and 6.4 <= waits[-1] <= 9.6
    assert all(w <= 9.6 for w in waits)
    assert b.next(at_least=20.0) == 20.0  # a 429's retry_after beats the schedule
    b.reset()
    assert b.next() <= 1.2


def test_the_outgoing_queue_is_sealed_and_survives_reopening(tmp_path):
    store = MessageStore(tmp_path / "glassmate.db")
    ledger = Ledger(store, matrix.SOURCE)
    txn = ledger.enqueue("!room:localhost", "Climbing crew", "Sunday at 10 works for me")
    store.close()
    raw = (tmp_path / "glassmate.db").read_bytes() + (tmp_path / "glassmate.db-wal").read_bytes() \
        if (tmp_path / "glassmate.db-wal").exists() else (tmp_path / "glassmate.db").read_bytes()
    assert b"Sunday at 10" not in raw and b"Climbing crew" not in raw
    with MessageStore(tmp_path / "glassmate.db") as again:
        pending = Ledger(again, matrix.SOURCE).pending()
    assert [(p.txn, p.thread, p.text) for p in pending] == [(txn, "Climbing crew", "Sunday at 10 works for me")]


class _Http:
    def __init__(self, status: int):
        self.status = status


@pytest.mark.parametrize(("status", "errcode", "retry_after_ms", "outcome"), [
    (429, "M_LIMIT_EXCEEDED", 7000, ("retry", 7.0)),  # rate limited: wait what the server asks
    (502, None, None, ("retry", 0.0)),  # a proxy in front of a server that is down
    (503, "M_UNKNOWN", None, ("retry", 0.0)),
    (401, "M_UNKNOWN_TOKEN", None, ("stop", "signed out")),  # retrying cannot help
])
def test_server_answers_become_a_retry_or_a_clear_stop(status, errcode, retry_after_ms, outcome, tmp_path):
    from nio import SyncError

    resp = SyncError("busy", errcode, retry_after_ms)
    resp.transport_response = _Http(status)
    store = MessageStore(tmp_path / "glassmate.db")
    Ledger(store, matrix.SOURCE).put("account", matrix.Account("http://127.0.0.1:9", "@w:localhost", "DEV",
                                                               "syt_x").to_json())
    conn = matrix.MatrixConnector(store, tmp_path, deliver=lambda ms, n: None)
    kind, detail = outcome
    if kind == "retry":
        with pytest.raises(matrix.Retry) as caught:
            conn._raise_for(resp)
        assert caught.value.after_s == detail and str(status) in str(caught.value)
    else:
        with pytest.raises(matrix.MatrixError, match=detail):
            conn._raise_for(resp)
