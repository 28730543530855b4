"""The HUD: the glasses' display as a small local web app (Starlette; one static page, nothing from a CDN).

The page draws `GlassesSession.screen` and redraws on every change pushed over Server-Sent Events. The keyboard
stands in for the temple touchpad (←/→ swipe, Enter tap, Esc back) and posts to /key; a typed or transcribed
command posts to /say; a message arriving from the feed posts to /feed (or comes from `replay_feed`).

Everything the session does that takes model time (a notification line, a summary, reply drafts) runs in a worker
thread, so the page keeps receiving the intermediate screens ("summarizing…") while it works.

Only the wearer's paired display gets in (`device.glasses.pairing`; the threat model is in docs/privacy.md): every
request needs the pairing secret (cookie or bearer token) except the pairing link itself; the Host header must be
one of the HUD's own names (DNS rebinding); a request a browser marks as coming from another site, or whose Origin
is not the HUD's, is refused; bodies are JSON only (`application/json` cannot be sent cross-site without a
preflight, and no CORS is allowed) and small; each client is rate-limited, the event streams are few, and the
session is never handed more work than it can queue. `/feed` (messages from outside) is off unless asked for.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from device.glasses.pairing import COOKIE, LOOPBACK_NAMES, Pairing
from device.glasses.session import GlassesSession, Screen
from device.messages.inbox import FeedError, Message, parse_line, replay

STATIC = Path(str(resources.files("device.glasses") / "hud_static"))
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class HudSecurity:
    """Who may talk to the HUD, and how much."""

    pairing: Pairing
    hosts: tuple[str, ...] = LOOPBACK_NAMES  # Host header values answered (see pairing.allowed_hosts)
    tls: bool = False  # served over HTTPS: the pairing cookie is Secure and the own origin is https://
    dev_feed: bool = False  # POST /feed: messages from outside, for development only
    max_body: int = MAX_BODY
    rate_per_s: float = 20.0  # requests per second per client (and paired or not), after a burst
    burst: int = 60
    max_streams: int = 4  # event streams open at once (a display or two; a flood is refused)
    max_queued: int = 4  # session calls waiting for the worker; more are refused, not queued


class RateLimiter:
    """A token bucket per key; the oldest keys are forgotten so a spray of addresses cannot grow it without end."""

    def __init__(self, rate: float, burst: int, keys: int = 4096) -> None:
        self.rate, self.burst, self.keys = rate, burst, keys
        self._buckets: OrderedDict[tuple, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: tuple) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.keys:
                self._buckets.popitem(last=False)
        return allowed


def _refuse(status: int, error: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers={"Cache-Control": "no-store"})


# The link carries the secret in its #fragment, which browsers never send to a server: it stays out of access
# logs, proxies and Referer headers. This page reads it and trades it for the cookie with a same-origin POST.
PAIR_PAGE = """<!doctype html><meta charset=utf-8><title>glassmate HUD: pairing</title>
<p id=msg>Pairing…</p>
<script>
const token = decodeURIComponent(location.hash.slice(1));
history.replaceState(null, "", "/pair");
fetch("/pair", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({token})})
  .then((r) => { if (r.ok) location.replace("/");
                 else document.getElementById("msg").textContent = "This pairing link is wrong or old."; });
</script>"""

NOT_PAIRED = HTMLResponse(
    "<!doctype html><meta charset=utf-8><title>glassmate HUD</title><p>This display is not paired. Open the pairing "
    "link that <code>glassmate hud</code> showed in its terminal (<code>glassmate hud --pair</code> shows it again).",
    status_code=401, headers={"Cache-Control": "no-store"})


class PairedOnly:
    """ASGI middleware: the pairing secret, the browser's own cross-site signals, JSON bodies and rate limits."""

    def __init__(self, app: ASGIApp, security: HudSecurity) -> None:
        self.app, self.security = app, security
        self.limiter = RateLimiter(security.rate_per_s, security.burst)

    def _paired(self, headers: Headers, cookies: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        presented = token.strip() if scheme.lower() == "bearer" else cookies.get(COOKIE)
        return self.security.pairing.matches(presented)

    def check(self, scope: Scope) -> Response | None:
        request = Request(scope)
        headers, method, path = request.headers, scope["method"], scope["path"]
        paired = self._paired(headers, request.cookies)
        client = scope.get("client") or ("?", 0)
        if not self.limiter.allow((client[0], paired)):  # a stranger's flood cannot use up the display's share
            return _refuse(429, "too many requests")
        pairing_page = path == "/pair" and method == "GET"  # may be opened from anywhere: a QR scanner, a link
        origin = headers.get("origin")
        own = f"{'https' if self.security.tls else 'http'}://{headers.get('host', '')}"
        if origin is not None and origin != own and not pairing_page:
            return _refuse(403, "cross-origin request refused")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none") and not (
                pairing_page and headers.get("sec-fetch-mode", "navigate") == "navigate"):
            return _refuse(403, "cross-site request refused")
        if path == "/pair":  # the page, and its POST of the secret it read from the link's #fragment
            return self._json_body(headers) if method == "POST" else None
        if not paired:
            return NOT_PAIRED if path == "/" else _refuse(401, "not paired: open the pairing link")
        return self._json_body(headers) if method == "POST" else None

    def _json_body(self, headers: Headers) -> Response | None:
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _refuse(415, "send JSON (Content-Type: application/json)")
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            return _refuse(411, "a Content-Length is required")
        if int(length) > self.security.max_body:
            return _refuse(413, "request body too large")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the HUD has none
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Broadcaster:
    """Fans each new screen out to every connected page (thread-safe: screens change in worker threads)."""

    def __init__(self, max_streams: int = 4) -> None:
        self._queues: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._lock = threading.Lock()
        self.max_streams = max_streams

    def publish(self, screen: Screen) -> None:
        data = json.dumps(screen.to_json(), ensure_ascii=False)
        with self._lock:
            targets = list(self._queues)
        for loop, queue in targets:
            loop.call_soon_threadsafe(self._offer, queue, data)

    @staticmethod
    def _offer(queue: asyncio.Queue, data: str) -> None:
        if queue.full():  # a page that stopped reading gets the newest screen, not an ever longer backlog
            queue.get_nowait()
        queue.put_nowait(data)

    def add(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue] | None:
        """A new stream's queue, or None when as many streams as allowed are open."""
        entry = (asyncio.get_running_loop(), asyncio.Queue(maxsize=256))
        with self._lock:
            if len(self._queues) >= self.max_streams:
                return None
            self._queues.add(entry)
        return entry

    def remove(self, entry) -> None:
        with self._lock:
            self._queues.discard(entry)


def create_app(session: GlassesSession, security: HudSecurity) -> Starlette:
    hub = Broadcaster(security.max_streams)
    session.subscribe(hub.publish)
    waiting = threading.BoundedSemaphore(security.max_queued)

    async def index(_: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def pair_page(_: Request) -> Response:
        return HTMLResponse(PAIR_PAGE, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def pair(request: Request) -> Response:
        try:
            token = (await body(request)).get("token")
        except ValueError as exc:
            return _refuse(400, str(exc))
        if not security.pairing.matches(token if isinstance(token, str) else None):
            return _refuse(401, "wrong or old pairing link: use the one `glassmate hud --pair` shows")
        paired = JSONResponse({"paired": True}, headers={"Cache-Control": "no-store"})
        paired.set_cookie(COOKIE, security.pairing.token, httponly=True, samesite="strict", secure=security.tls,
                          path="/")
        return paired

    async def events(request: Request) -> Response:
        entry = hub.add()
        if entry is None:
            return _refuse(503, "too many open displays")

        async def stream():
            try:
                yield f"data: {json.dumps(session.screen.to_json(), ensure_ascii=False)}\n\n"
                while True:
                    try:
                        data = await asyncio.wait_for(entry[1].get(), timeout=15)
                    except TimeoutError:
                        if await request.is_disconnected():
                            break
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {data}\n\n"
            finally:
                hub.remove(entry)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def body(request: Request) -> dict:
        raw = b""
        async for chunk in request.stream():  # the declared length was checked; this holds the sender to it
            raw += chunk
            if len(raw) > security.max_body:
                raise ValueError("request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def answer(call):
        async def endpoint(request: Request) -> Response:
            try:
                data = await body(request)
            except ValueError as exc:
                return _refuse(400, str(exc))
            if not waiting.acquire(blocking=False):  # the session is busy enough: refuse, never pile up work
                return _refuse(429, "the glasses are busy; try again")
            try:
                screen = await run_in_threadpool(call, data)
            except (ValueError, FeedError) as exc:
                return _refuse(400, str(exc))
            finally:
                waiting.release()
            return JSONResponse(screen.to_json())
        return endpoint

    def key(data: dict) -> Screen:
        return session.key(str(data.get("key", "")))

    def say(data: dict) -> Screen:
        utterance = str(data.get("utterance", "")).strip()
        if not utterance:
            raise ValueError("say needs an utterance")
        return session.hear(utterance)

    def feed(data: dict) -> Screen:
        data.setdefault("ts", datetime.now().astimezone().isoformat())
        message = parse_line(json.dumps(data).encode(), "POST /feed")
        if message is None:
            raise ValueError("empty message")
        return session.receive(message)

    async def screen(_: Request) -> JSONResponse:
        return JSONResponse(session.screen.to_json())

    routes = [
        Route("/", index),
        Route("/pair", pair_page, methods=["GET"]),
        Route("/pair", pair, methods=["POST"]),
        Route("/events", events),
        Route("/screen", screen),
        Route("/key", answer(key), methods=["POST"]),
        Route("/say", answer(say), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if security.dev_feed:
        routes.append(Route("/feed", answer(feed), methods=["POST"]))
    return Starlette(routes=routes, middleware=[
        Middleware(TrustedHostMiddleware, allowed_hosts=list(security.hosts), www_redirect=False),
        Middleware(PairedOnly, security=security),
    ])


def replay_feed(session: GlassesSession, messages: Iterable[Message], realtime: bool, speed: float) -> threading.Thread:
    """Deliver a feed's messages to the session in the background (with their real gaps, sped up, if asked)."""
    def run() -> None:
        for burst in replay(list(messages), realtime=realtime, speed=speed):
            for i, message in enumerate(burst):  # one card per burst: the last message's
                session.receive(message, notify=i == len(burst) - 1)
    worker = threading.Thread(target=run, name="feed-replay", daemon=True)
    worker.start()
    return worker
