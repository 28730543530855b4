"""The Matrix connector: the wearer's Matrix account (and every chat bridged into it) on the glasses.

`login` trades the password, once, for an access token kept sealed in the store (`Ledger`); the password is never
stored. `MatrixConnector` then syncs in a background thread: every new message of a joined room is decrypted here
(end-to-end encrypted rooms included; the keys live in `state/matrix/`, pickled under a key derived from the
store's), stored with its event id, and handed to `deliver`; edits replace, deletions delete (store and index);
invitations are accepted when `join_invites`. Replies the wearer confirmed reach it through the egress gate
(`outbox`, destination `matrix-homeserver`), wait in the sealed queue and are sent with a fixed transaction id, so
a resend after a crash or an outage lands once. A server that is down, slow or answers 429/5xx is retried with
backoff, and the display says so (`on_state`).

Devices are trusted on first use (`ignore_unverified_devices`), as most Matrix clients do without verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.connectors.ledger import Ledger, LedgerError, Outgoing
from device.messages.inbox import WEARER, Message
from device.messages.store import MessageStore, StoreError

SOURCE = "matrix"
DESTINATION = "matrix-homeserver"
DEVICE_NAME = "glassmate"
SYNC_TIMEOUT_MS = 10_000
REQUEST_TIMEOUT_S = 30.0
BACKOFF_START_S = 1.0
BACKOFF_CAP_S = 30.0
UNDECRYPTABLE = "🔒 (an encrypted message glassmate could not decrypt yet)"
MEDIA_WORDS = {"m.image": "a photo", "m.video": "a video", "m.audio": "a voice message", "m.file": "a file"}


class MatrixError(Exception):
    pass


@dataclass(frozen=True)
class Account:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str

    def to_json(self) -> dict:
        return {"homeserver": self.homeserver, "user_id": self.user_id, "device_id": self.device_id,
                "access_token": self.access_token}


def _nio():
    try:
        import nio
    except ImportError as exc:
        raise MatrixError("the Matrix connector needs matrix-nio: pip install 'glassmate[matrix]'") from exc
    return nio


def _net_errors() -> tuple[type[BaseException], ...]:
    """What a server that is down or drops the connection raises (aiohttp's errors are not all OSErrors)."""
    import aiohttp

    return OSError, TimeoutError, aiohttp.ClientError


def _config(store: MessageStore):
    nio = _nio()
    # our own retries (with the state on the display) instead of nio's silent ones
    return nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False, max_limit_exceeded=0,
                                 max_timeouts=0, request_timeout=REQUEST_TIMEOUT_S,
                                 pickle_key=store.cipher.blind("matrix-pickle-key", "v1"))


def keys_dir(state: Path) -> Path:
    return state / "matrix"


def account(store: MessageStore) -> Account | None:
    saved = Ledger(store, SOURCE).get("account")
    return Account(**saved) if saved else None


def login(store: MessageStore, state: Path, homeserver: str, user: str, password: str) -> Account:
    """Password → access token, sealed in the store; the device's encryption keys are made and uploaded."""
    nio = _nio()
    keys = keys_dir(state)
    keys.mkdir(parents=True, exist_ok=True)

    async def run() -> Account:
        client = nio.AsyncClient(homeserver.rstrip("/"), user, store_path=str(keys), config=_config(store))
        try:
            try:
                resp = await client.login(password, device_name=DEVICE_NAME)
            except _net_errors() as exc:
                raise MatrixError(f"cannot reach {homeserver}: {exc}") from exc
            if not isinstance(resp, nio.LoginResponse):
                raise MatrixError(f"{homeserver} refused the login for {user}: {resp.message or resp.status_code}")
            if client.should_upload_keys:
                await client.keys_upload()
            return Account(homeserver.rstrip("/"), resp.user_id, resp.device_id, resp.access_token)
        finally:
            await client.close()

    acct = asyncio.run(run())
    ledger = Ledger(store, SOURCE)
    ledger.forget()  # a new login starts a new sync and a new device: nothing of an older one applies
    ledger.put("account", acct.to_json())
    return acct


def logout(store: MessageStore, state: Path) -> bool:
    """Sign the device out at the server (best effort) and forget the token; the stored messages stay."""
    nio = _nio()
    acct = account(store)
    if acct is None:
        return False

    async def run() -> None:
        client = nio.AsyncClient(acct.homeserver, acct.user_id, device_id=acct.device_id, config=_config(store))
        client.access_token = acct.access_token
        try:
            await client.logout()
        except _net_errors():
            pass  # the server is unreachable: the token is forgotten here all the same
        finally:
            await client.close()

    asyncio.run(run())
    Ledger(store, SOURCE).forget()
    return True


class Backoff:
    """1 s, 2 s, 4 s … 30 s, with jitter; reset by a success."""

    def __init__(self, start: float = BACKOFF_START_S, cap: float = BACKOFF_CAP_S):
        self.start, self.cap, self.failures = start, cap, 0

    def next(self, at_least: float = 0.0) -> float:
        self.failures += 1
        wait = min(self.cap, self.start * 2 ** (self.failures - 1))
        return max(at_least, wait * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.failures = 0


class Retry(Exception):
    def __init__(self, why: str, after_s: float = 0.0):
        super().__init__(why)
        self.after_s = after_s


class Outbox:
    """The egress gate's transport for `matrix-homeserver`: a confirmed reply goes into the sealed queue (durable
    before the wearer is told it is sent) and the connector is woken to send it."""

    def __init__(self, connector: MatrixConnector):
        self.connector = connector

    def deliver(self, destination: str, kind: str, data: bytes) -> None:
        payload = json.loads(data)
        self.connector.queue_reply(payload["thread"], payload["text"])


class MatrixConnector:
    def __init__(self, store: MessageStore, state: Path,
                 deliver: Callable[[list[Message], bool], None],
                 on_state: Callable[[str | None], None] = lambda s: None,
                 on_edit: Callable[[Message, Message], None] = lambda old, new: None,
                 on_delete: Callable[[Message], None] = lambda m: None,
                 join_invites: bool = True, timezone=None):
        """`deliver(messages, notify)`: new messages, already stored; notify=False for the history the first sync
        brings. Callbacks run in the connector's thread."""
        self.store = store
        self.keys = keys_dir(state)
        self.ledger = Ledger(store, SOURCE)
        self.deliver, self.on_state, self.on_edit, self.on_delete = deliver, on_state, on_edit, on_delete
        self.join_invites = join_invites
        self.timezone = timezone
        acct = account(store)
        if acct is None:
            raise MatrixError("no Matrix account on this device: glassmate connect matrix --homeserver URL "
                              "--user @you:server")
        self.account = acct
        self.rooms: dict[str, str] = self.ledger.get("rooms", {})  # room id → chat name, fixed once given
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state: str | None = "Matrix: connecting…"
        self.synced = threading.Event()  # set after the first successful sync

    # -- chats ----------------------------------------------------------------------------------------------
    def owns(self, thread: str) -> bool:
        return thread in self.rooms.values()

    def room_of(self, thread: str) -> str | None:
        return next((r for r, name in self.rooms.items() if name == thread), None)

    def _chat_name(self, room) -> str:
        if room.room_id not in self.rooms:
            name = room.display_name or room.room_id
            taken = set(self.rooms.values())
            unique, n = name, 2
            while unique in taken:
                unique, n = f"{name} ({n})", n + 1
            self.rooms[room.room_id] = unique
            self.ledger.put("rooms", self.rooms)
        return self.rooms[room.room_id]

    # -- replies ----------------------------------------------------------------------------------------------
    def queue_reply(self, thread: str, text: str) -> None:
        room = self.room_of(thread)
        if room is None:
            raise MatrixError(f"{thread!r} is not a Matrix chat")
        self.ledger.enqueue(room, thread, text)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- running ----------------------------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="matrix", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _set_state(self, state: str | None) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    async def _main(self) -> None:
        nio = _nio()
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self.keys.mkdir(parents=True, exist_ok=True)
        client = nio.AsyncClient(self.account.homeserver, self.account.user_id, device_id=self.account.device_id,
                                 store_path=str(self.keys), config=_config(self.store))
        client.restore_login(self.account.user_id, self.account.device_id, self.account.access_token)
        client.next_batch = self.ledger.get("since")
        self.on_state(self.state)
        try:
            sender = asyncio.create_task(self._send_loop(client))
            await self._sync_loop(client)
            sender.cancel()
        finally:
            await client.close()

    async def _sync_loop(self, client) -> None:
        nio = _nio()
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                # the first sync of a process asks for every room's full state (members, encryption), which a
                # restarted client needs before it can send; history=True: a new login's backlog, shown quietly
                history, first = client.next_batch is None, not self.synced.is_set()
                resp = await client.sync(timeout=0 if first else SYNC_TIMEOUT_MS, full_state=first)
                if isinstance(resp, nio.SyncError):
                    self._raise_for(resp)
                await self._settle_keys(client)
                self._take(client, resp, history=history)
                self.ledger.put("since", resp.next_batch)  # only after every message it covers is stored
                if self.join_invites:
                    for room_id in list(resp.rooms.invite):
                        await client.join(room_id)
                backoff.reset()
                self.synced.set()
                self._set_state(None)
                self._wake and self._wake.set()  # a reply queued while the server was away goes now
            except Retry as exc:
                await self._wait(backoff.next(exc.after_s), str(exc))
            except _net_errors():
                await self._wait(backoff.next(), "server unreachable")
            except (StoreError, LedgerError) as exc:  # a full disk: nothing was marked synced; try again later
                await self._wait(backoff.next(), f"cannot store messages: {exc}")
            except MatrixError as exc:  # signed out at the server: retrying cannot help
                self._set_state(f"Matrix: {exc}")
                return

    async def _wait(self, seconds: float, why: str) -> None:
        self._set_state(f"Matrix: reconnecting… ({why}; next try in {seconds:.0f} s)")
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while not self._stop.is_set() and loop.time() < until:
            await asyncio.sleep(min(0.2, until - loop.time()))

    def _raise_for(self, resp) -> None:
        http = getattr(resp.transport_response, "status", None) if resp.transport_response else None
        if resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN") or http == 401:
            raise MatrixError("signed out by the server — connect again: glassmate connect matrix")
        after = (resp.retry_after_ms or 0) / 1000
        raise Retry(f"server answered {http or resp.status_code}", after)

    async def _settle_keys(self, client) -> None:
        """What an encrypted room needs between syncs: our keys uploaded, the members' devices known, sessions."""
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    # -- receiving --------------------------------------------------------------------------------------------
    def _when(self, event) -> datetime:
        ts = datetime.fromtimestamp(event.server_timestamp / 1000, tz=UTC)
        return ts.astimezone(self.timezone) if self.timezone else ts.astimezone()

    def _take(self, client, resp, history: bool) -> None:
        nio = _nio()
        for room_id, info in resp.rooms.join.items():
            room = client.rooms.get(room_id)
            if room is None:
                continue
            thread = self._chat_name(room)
            fresh: list[Message] = []
            backlog: list[Message] = []  # what was said before the wearer joined: stored, shown quietly
            for event in info.timeline.events:
                if self.ledger.seen(event.event_id):
                    continue
                if isinstance(event, nio.RoomMemberEvent) and event.state_key == client.user_id and \
                        event.membership == "join" and event.prev_membership != "join":
                    backlog, fresh = backlog + fresh, []
                if isinstance(event, nio.RedactionEvent):
                    old = self.ledger.delete(event.event_id, event.redacts)
                    if old is not None:
                        fresh, backlog = [m for m in fresh if m != old], [m for m in backlog if m != old]
                        self.on_delete(old)
                    continue
                content = event.source.get("content", {})
                relation = content.get("m.relates_to") or {}
                if relation.get("rel_type") == "m.replace" and isinstance(content.get("m.new_content"), dict):
                    new_text = str(content["m.new_content"].get("body", ""))
                    edited = self.ledger.replace(event.event_id, relation.get("event_id", ""), new_text)
                    if edited is not None:
                        fresh = [edited[1] if m == edited[0] else m for m in fresh]
                        backlog = [edited[1] if m == edited[0] else m for m in backlog]
                        self.on_edit(*edited)
                    continue
                text = self._text(event, nio)
                if text is None:  # membership, state, reactions: nothing to read
                    self.ledger.record(event.event_id, None)
                    continue
                if event.sender == client.user_id and self._is_echo(event, thread, text):
                    continue
                sender = WEARER if event.sender == client.user_id else room.user_name(event.sender) or event.sender
                message = Message(thread, sender, text, self._when(event))
                self.ledger.record(event.event_id, message)
                fresh.append(message)
                if isinstance(event, nio.MegolmEvent):
                    asyncio.ensure_future(self._request_key(client, event))
            if backlog:
                self.deliver(backlog, False)
            if fresh:
                self.deliver(fresh, not history)

    async def _request_key(self, client, event) -> None:
        with contextlib.suppress(Exception):  # a courtesy to the sender's devices; the message already shows as locked
            await client.request_room_key(event)

    def _text(self, event, nio) -> str | None:
        if isinstance(event, (nio.RoomMessageText, nio.RoomMessageNotice)):
            return event.body
        if isinstance(event, nio.RoomMessageEmote):
            return f"* {event.body}"
        if isinstance(event, (nio.RoomMessageMedia, nio.RoomEncryptedMedia)):
            kind = MEDIA_WORDS.get(event.source.get("content", {}).get("msgtype", ""), "a file")
            return f"(sent {kind}: {event.body})"
        if isinstance(event, nio.MegolmEvent):
            return UNDECRYPTABLE
        return None

    def _is_echo(self, event, thread: str, text: str) -> bool:
        """Our own reply coming back from the server: already stored and shown when it was confirmed."""
        txn = getattr(event, "transaction_id", None) or event.source.get("unsigned", {}).get("transaction_id")
        pending = {(o.thread, o.text) for o in self.ledger.pending()}
        if not (self.ledger.is_ours(txn) or (thread, text) in pending):
            return False
        self.ledger.link(event.event_id, self._stored_reply(thread, text))
        return True

    def _stored_reply(self, thread: str, text: str) -> int | None:
        for rid, m in reversed(self.store.thread_rows(thread)):
            if m.sender == WEARER and m.text == text:
                return rid
        return None

    # -- sending ----------------------------------------------------------------------------------------------
    async def _send_loop(self, client) -> None:
        backoff = Backoff()
        assert self._wake is not None
        while not self._stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self.synced.is_set():  # woken again by the first sync
                continue
            try:
                for item in self.ledger.pending():
                    await self._send(client, item)
                backoff.reset()
                if self.state and self.state.startswith("Matrix: reply waiting"):
                    self._set_state(None)
            except Retry as exc:
                wait = backoff.next(exc.after_s)
                self._set_state(f"Matrix: reply waiting ({exc}); next try in {wait:.0f} s")
                self._loop.call_later(wait, self._wake.set)
            except _net_errors():
                wait = backoff.next()
                self._set_state(f"Matrix: reply waiting (server unreachable); next try in {wait:.0f} s")
                self._loop.call_later(wait, self._wake.set)
            except (StoreError, LedgerError) as exc:
                wait = backoff.next()
                self._set_state(f"Matrix: reply waiting ({exc}); next try in {wait:.0f} s")
                self._loop.call_later(wait, self._wake.set)

    async def _send(self, client, item: Outgoing) -> None:
        nio = _nio()
        self.ledger.attempted(item)
        resp = await client.room_send(item.room, "m.room.message", {"msgtype": "m.text", "body": item.text},
                                      tx_id=item.txn, ignore_unverified_devices=True)
        if isinstance(resp, nio.RoomSendResponse):
            self.ledger.sent(item, resp.event_id, self._stored_reply(item.thread, item.text))
            return
        http = getattr(resp.transport_response, "status", None) if resp.transport_response else None
        if http is None or http == 429 or http >= 500:
            raise Retry(f"server answered {http or resp.status_code}", (getattr(resp, "retry_after_ms", 0) or 0)
                        / 1000)
        raise Retry(f"the server refused it: {resp.message or resp.status_code}")

    def describe(self) -> dict[str, Any]:
        return {"homeserver": self.account.homeserver, "user_id": self.account.user_id,
                "device_id": self.account.device_id, "chats": sorted(self.rooms.values()),
                "queued_replies": len(self.ledger.pending())}
