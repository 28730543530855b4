"""`glassmate hud [--voice]`: the glasses' display in a browser, the touchpad, and the voice loop."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer

from device import catalog
from device.assistant.core import Assistant, AssistantError
from device.catalog import CatalogError
from device.cli.common import (
    AdaptersOpt,
    CtxOpt,
    ModelOpt,
    ThreadsOpt,
    clear_errors,
    console,
    err,
    fail,
    feed_or_sample,
    fresh_store,
    open_assistant,
)
from device.engines import EngineError
from device.glasses.feedback import FeedbackLog
from device.messages.delivery import DeliveryPolicy
from device.messages.store import MessageStore
from device.paths import state_dir
from device.privacy import open_gate


def hud(
    feed: Annotated[Path | None, typer.Option(help="JSONL feed to replay into the HUD (default: the sample inbox)")
                    ] = None,
    host: Annotated[str, typer.Option(help="address to serve on (keep it on loopback unless you mean it)")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8377,
    replay_feed: Annotated[bool, typer.Option("--replay/--no-replay", help="replay the feed as arriving messages")
                           ] = True,
    speed: Annotated[float, typer.Option(help="replay speed-up of the feed's own gaps (each capped at 3 s)")] = 1.0,
    aliases: Annotated[Path | None, typer.Option(help="nicknames: JSON {contact: [nickname, ...]}")] = None,
    llm_commands: Annotated[bool, typer.Option(help="the LLM for commands the rules cannot place")] = True,
    voice: Annotated[bool, typer.Option("--voice", help="also listen on the microphone and speak (voice extra)")
                     ] = False,
    wake_phrase: Annotated[str | None, typer.Option(help="with --voice: only act on speech starting with this")
                           ] = None,
    input_device: Annotated[str | None, typer.Option(help="with --voice: microphone (sounddevice name or index)")
                            ] = None,
    output_device: Annotated[str | None, typer.Option(help="with --voice: speaker (sounddevice name or index)")
                             ] = None,
    pair: Annotated[bool, typer.Option("--pair", help="show the pairing link and QR code again (to pair another "
                                                   "display)")] = False,
    rotate_token: Annotated[bool, typer.Option("--rotate-token", help="make a new pairing secret: every paired "
                                                                      "display must pair again")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="serve HTTPS with a self-signed certificate (made on first "
                                                    "start; its fingerprint is shown with the pairing QR)")] = False,
    insecure_lan: Annotated[bool, typer.Option("--insecure-lan", help="serve plain HTTP beyond loopback: anyone on "
                                               "the network can read the pairing link and every message")] = False,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="another name the display reaches "
                                                         "this machine by (Host header), e.g. a LAN address")] = None,
    dev_feed: Annotated[bool, typer.Option("--dev-feed", help="development only: accept messages on POST /feed "
                                                              "(paired clients only)")] = False,
    matrix: Annotated[bool, typer.Option("--matrix", help="your Matrix chats, live (connect first: glassmate "
                                         "connect matrix); the wearer's store keeps them across restarts")] = False,
    prepare: Annotated[bool, typer.Option("--prepare/--no-prepare", help="when a card shows, make its chat's "
                                          "catch-up and drafts in the background, so opening it finds them ready")
                       ] = True,
    learn_when_idle: Annotated[float, typer.Option(help="with --matrix: after this many minutes with the display "
                                                   "unchanged and 10 new sent replies, learn from them in the "
                                                   "background (glassmate learn; needs the train extra); 0: never")
                               ] = 10.0,
    model: ModelOpt = None, threads: ThreadsOpt = None, n_ctx: CtxOpt = None, adapters: AdaptersOpt = True,
) -> None:
    """Serve the glasses' display on http://HOST:PORT and replay a feed into it (touchpad: arrows, Enter, Esc;
    with --voice, the microphone and speaker too). Only a paired display gets in: open the pairing link shown."""
    import uvicorn

    from device.glasses import pairing as pairing_
    from device.glasses.commands import ContactBook, llm_completer
    from device.glasses.hud import HudSecurity, create_app
    from device.glasses.hud import replay_feed as start_replay
    from device.glasses.session import GlassesSession

    if not pairing_.is_loopback(host) and not (tls or insecure_lan):
        raise typer.BadParameter(
            f"{host} is reachable from the network, and without TLS anyone on it can read the pairing link and "
            f"every message shown. Add --tls (a self-signed certificate; check its fingerprint on the display) or, "
            f"knowing that, --insecure-lan", param_hint="--host")
    with clear_errors():
        hosts = pairing_.allowed_hosts(host, tuple(allow_host or ()))
        try:
            secret = pairing_.load_or_create(state_dir(), rotate=rotate_token)
        except pairing_.PairingError as exc:
            raise fail(str(exc)) from None
        certificate = None
        if tls:
            from device.glasses.tls import load_or_create as load_certificate

            certificate = load_certificate(state_dir(), hosts)
        security = HudSecurity(secret, tuple(hosts), tls=tls, dev_feed=dev_feed)
        messages = feed_or_sample(feed) if feed is not None or not matrix else []
        nicknames = ContactBook.read_aliases(aliases) if aliases else None
        assistant = open_assistant(model, threads, n_ctx, adapters)
        if matrix:  # live chats: the wearer's own store, kept across restarts, its chats on the display at once
            store = MessageStore(state_dir() / "glassmate.db", shared=True)
            known = {name: store.thread(name) for name in store.thread_names()}
        else:
            store, known = fresh_store("hud.db", shared=True), {}
        asker = _hud_asker(assistant, store, threads)
        connector, transport, arrivals = _matrix_connector(store) if matrix else (None, None, None)
        # what reaches the display: the wearer's settings (`glassmate chats`), and what they say to change them
        policy_store = store if matrix else MessageStore(state_dir() / "glassmate.db", shared=True)
        session = GlassesSession(assistant, open_gate(store, transport=transport), known, aliases=nicknames,
                                 complete=llm_completer(assistant) if llm_commands else None,
                                 on_message=lambda m: store.add([m]), asker=asker,
                                 policy=DeliveryPolicy.load(policy_store), save_policy=lambda p: p.save(policy_store),
                                 prepare=prepare)
        # what the wearer does with the drafts, sealed where their messages are (`glassmate learn` reads it)
        session.on_feedback = FeedbackLog(store).record
        if connector is not None:
            session.on_read = store.mark_read  # read stays read after a restart
            _wire_matrix(connector, session, arrivals)
        if replay_feed and messages:
            start_replay(session, messages, realtime=True, speed=speed)
        if voice:
            _start_voice(session, wake_phrase, input_device, output_device, threads)
        learner = _idle_learner(session, store, learn_when_idle) if matrix and learn_when_idle > 0 else None
        base = f"{'https' if tls else 'http'}://{_display_host(host)}:{port}"
        source = f"Matrix ({connector.account.user_id})" if connector else f"{len(messages)} messages to replay"
        console.print(f"[bold]glassmate HUD[/] on {base} — {source}, model "
                      f"[cyan]{assistant.engine.name}[/]. Sent replies land in {state_dir() / 'outbox'}.",
                      highlight=False)
        if insecure_lan and not tls and not pairing_.is_loopback(host):
            err.print("[bold yellow]insecure LAN:[/] plain HTTP on the network — anyone on it can read the pairing "
                      "link and every message, summary and draft the display shows.", highlight=False)
        if secret.created or pair:
            _show_pairing(secret, base, certificate.fingerprint if certificate else None)
        else:
            console.print("Paired displays stay paired. To pair another: glassmate hud --pair; to revoke all: "
                          "glassmate hud --rotate-token.", highlight=False)
        try:
            uvicorn.run(create_app(session, security), host=host, port=port, log_level="warning", access_log=False,
                        ssl_certfile=str(certificate.cert) if certificate else None,
                        ssl_keyfile=str(certificate.key) if certificate else None)
        finally:
            if learner is not None:
                learner.close()
            session.close()


def _idle_learner(session, store: MessageStore, minutes: float):
    """`glassmate learn` when the glasses are quiet (`idle_learning.py`); an adapter it installs drafts next."""
    from device.engines.personal import PersonalAdapters
    from device.glasses.idle_learning import IdleLearner, IdlePolicy, learn_command
    from device.tasks import Task

    assistant = session.assistant
    model = assistant.engine.name
    command = learn_command(model, store.path)
    if command is None:
        console.print("learning when idle: off (the train extra is not installed)", highlight=False)
        return None

    def sends() -> int:
        return sum(1 for _, m in store.messages() if m.from_wearer)

    def installed(report: dict) -> None:
        mine = PersonalAdapters(state_dir(), model)
        version = mine.current()
        if version is None:
            return
        name = f"personal:v{version.version}"
        with session._model_lock:  # between two tasks, never during one
            assistant.engine.load_adapter(name, mine.path(version.gguf))
            assistant.adapters[Task.DRAFT_REPLIES] = name
    learner = IdleLearner(lambda: session.last_active, sends, command, installed,
                          IdlePolicy(idle_s=minutes * 60, poll_s=60.0))
    learner.start()
    return learner


Arrival = Literal["receive", "edit", "delete"]  # what the Matrix connector queues for the session


def _matrix_connector(store: MessageStore):
    """The Matrix connector, the egress transport that hands it confirmed replies (everything else: the outbox
    folder, as before), and the queue its arrivals wait in for the session."""
    from device.connectors.matrix import DESTINATION, MatrixConnector, MatrixError, Outbox
    from device.privacy.transport import OutboxTransport, RoutingTransport

    arrivals: queue.Queue = queue.Queue()  # of (what, args): filled with the session's calls by _wire_matrix
    try:
        connector = MatrixConnector(store, state_dir(), deliver=lambda batch, notify: arrivals.put(
            ("receive", (batch, notify))))
    except MatrixError as exc:
        raise fail(str(exc)) from None
    return connector, RoutingTransport(OutboxTransport(state_dir() / "outbox"), {DESTINATION: Outbox(connector)}), \
        arrivals


def _wire_matrix(connector, session, arrivals: queue.Queue) -> None:
    """Arrivals, edits and deletions reach the session in order, in a worker of their own (the model's notification
    is slow; the sync must not wait for it); the connection state goes straight to the display."""
    from device.connectors.matrix import DESTINATION

    session.reply_destination = lambda thread: DESTINATION if connector.owns(thread) else "phone-bridge"
    session.source_of = lambda message: "matrix" if connector.owns(message.thread) else "feed"
    connector.on_state = session.set_connection
    # edits and deletions queue behind the arrivals they refer to: an edit never overtakes its message
    connector.on_edit = lambda old, new: arrivals.put(("edit", (old, new)))
    connector.on_delete = lambda message: arrivals.put(("delete", (message,)))

    def receive(batch: list, notify: bool) -> None:
        for i, message in enumerate(batch):  # one card per batch: the last message's
            try:
                session.receive(message, notify=notify and i == len(batch) - 1)
            except (EngineError, AssistantError) as exc:  # the message is stored; its card could not be made
                err.print(f"[yellow]could not notify:[/] {exc}", highlight=False)

    calls: dict[Arrival, Callable[..., object]] = {"receive": receive, "edit": session.replace_message,
                                                   "delete": session.remove_message}

    def work() -> None:
        while True:
            what, args = arrivals.get()
            calls[what](*args)

    threading.Thread(target=work, name="matrix-arrivals", daemon=True).start()
    connector.start()


def _display_host(host: str) -> str:
    """The address a display should open: the machine's name for a wildcard bind."""
    import platform

    if host in ("0.0.0.0", "::"):
        return platform.node()
    return f"[{host}]" if ":" in host else host


def _show_pairing(secret, base: str, fingerprint: str | None) -> None:
    """The pairing link, once, on the wearer's own terminal (never in a log): as text and as a QR code."""
    from device.glasses.pairing import qr_text

    url = secret.url(base)
    console.print(f"[bold]Pair a display:[/] open {url}", highlight=False, soft_wrap=True)
    console.print(qr_text(url), highlight=False, markup=False)
    if fingerprint:
        console.print(f"certificate SHA-256 fingerprint (compare it on the display): {fingerprint}", highlight=False)


def _hud_asker(assistant: Assistant, store: MessageStore, threads: int | None):
    """Questions about the messages on the glasses, when the `ask` extra (embedder + index) is installed; answered
    by the catalog's ask model when it is there, else by the session's model."""
    from device.ask.answer import InboxAsker
    from device.ask.embedder import EmbedderError
    from device.cli.ask import open_index, open_verifier

    try:
        index, _ = open_index(store, threads)
    except (ImportError, EmbedderError, CatalogError, OSError) as exc:
        err.print(f"[yellow]questions about your messages are off:[/] {exc} (pip install 'glassmate[ask]')",
                  highlight=False)
        return None
    session = assistant
    name = catalog.ask_model()
    if name != assistant.engine.name:
        try:
            assistant = open_assistant(name, threads, None, adapters=False)
        except (CatalogError, EngineError) as exc:
            err.print(f"[yellow]questions about your messages are answered by {assistant.engine.name}, not the "
                      f"ask model:[/] {exc}", highlight=False)
    # the verifier is usually the session's own model (the catalog default): no second copy is loaded
    checker = open_verifier(None, threads, None, required=False, beside=session)
    return InboxAsker(assistant, index, verifier=checker)


def _start_voice(session, wake_phrase: str | None, input_device: str | None, output_device: str | None,
                 threads: int | None) -> None:
    """The voice loop in the background: turns until the process ends; a failing turn is reported, not fatal."""
    from device.glasses.voice import AudioIO, Synthesizer, Transcriber, VoiceError, VoiceLoop

    def sound_device(value: str | None) -> int | str | None:
        return int(value) if value is not None and value.isdigit() else value

    try:
        transcriber, synthesizer = Transcriber(threads=threads or 2), Synthesizer()
        audio = AudioIO(sound_device(input_device), sound_device(output_device))
    except ImportError as exc:
        raise fail(f"--voice needs {exc.name or exc}: pip install 'glassmate[voice]'") from None
    except VoiceError as exc:
        raise fail(str(exc)) from None

    def run() -> None:
        with audio:
            loop = VoiceLoop(session, transcriber, synthesizer, audio, wake_phrase)
            while True:
                try:
                    turn = loop.turn(timeout_s=24 * 3600)
                    err.print(f"[dim]heard[/] {turn.heard!r} → {turn.view} ({turn.seconds:.1f} s)", highlight=False)
                except VoiceError as exc:
                    err.print(f"[yellow]voice:[/] {exc}", highlight=False)

    threading.Thread(target=run, name="voice-loop", daemon=True).start()
    console.print(f"voice: listening{f' for “{wake_phrase}”' if wake_phrase else ''} ({synthesizer.engine} speaks)",
                  highlight=False)
