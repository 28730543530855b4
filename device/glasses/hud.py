"""The HUD: the glasses' display as a small local web app (Starlette; one static page, nothing from a CDN).

The page draws `GlassesSession.screen` and redraws on every change pushed over Server-Sent Events. The keyboard
stands in for the temple touchpad (←/→ swipe, Enter tap, Esc back) and posts to /key; a typed or transcribed
command posts to /say; a message arriving from the feed posts to /feed (or comes from `replay_feed`).

Everything the session does that takes model time (a notification line, a summary, reply drafts) runs in a worker
thread, so the page keeps receiving the intermediate screens ("summarizing…") while it works.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from device.glasses.session import GlassesSession, Screen
from device.messages.inbox import FeedError, Message, parse_line, replay

STATIC = Path(str(resources.files("device.glasses") / "hud_static"))
MAX_BODY = 64 * 1024


class Broadcaster:
    """Fans each new screen out to every connected page (thread-safe: screens change in worker threads)."""

    def __init__(self) -> None:
        self._queues: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self._lock = threading.Lock()

    def publish(self, screen: Screen) -> None:
        data = json.dumps(screen.to_json(), ensure_ascii=False)
        with self._lock:
            targets = list(self._queues)
        for loop, queue in targets:
            loop.call_soon_threadsafe(queue.put_nowait, data)

    def add(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        entry = (asyncio.get_running_loop(), asyncio.Queue())
        with self._lock:
            self._queues.add(entry)
        return entry

    def remove(self, entry) -> None:
        with self._lock:
            self._queues.discard(entry)


def create_app(session: GlassesSession) -> Starlette:
    hub = Broadcaster()
    session.subscribe(hub.publish)

    async def index(_: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def events(request: Request) -> StreamingResponse:
        entry = hub.add()

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
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise ValueError("request body too large")
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def answer(call):
        async def endpoint(request: Request) -> JSONResponse:
            try:
                data = await body(request)
                screen = await run_in_threadpool(call, data)
            except (ValueError, FeedError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
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

    return Starlette(routes=[
        Route("/", index),
        Route("/events", events),
        Route("/screen", screen),
        Route("/key", answer(key), methods=["POST"]),
        Route("/say", answer(say), methods=["POST"]),
        Route("/feed", answer(feed), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
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
