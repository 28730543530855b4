"""`glassmate connect matrix|status|logout`: the wearer's own chats, through a Matrix account (and its bridges)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from device.cli.common import JsonOpt, StoreOpt, clear_errors, console, device_store, fail
from device.connectors.ledger import LedgerError
from device.paths import state_dir

app = typer.Typer(help="Connect a message source: your Matrix account and the chats bridged into it.",
                  no_args_is_help=True)


@app.command("matrix")
def matrix(
    homeserver: Annotated[str, typer.Option(help="the homeserver's URL, e.g. https://matrix.example.org")],
    user: Annotated[str, typer.Option(help="your Matrix ID (@you:example.org) or user name")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input "
                                                 "(for scripts) instead of asking")] = False,
    store_path: StoreOpt = None,
) -> None:
    """Log in once: the password is traded for an access token, kept sealed in the encrypted store (never in a
    plain file); the password itself is not kept. Then `glassmate hud --matrix` shows and answers your chats."""
    from device.connectors.matrix import MatrixError, login

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("Password", hide_input=True)
    if not password:
        raise fail("no password given")
    with clear_errors(), device_store(store_path) as store:
        try:
            acct = login(store, state_dir(), homeserver, user, password)
        except MatrixError as exc:
            raise fail(str(exc)) from None
    console.print(f"connected [cyan]{acct.user_id}[/] on {acct.homeserver} as device {acct.device_id}. "
                  f"Run: glassmate hud --matrix", highlight=False)


@app.command("status")
def status(json_out: JsonOpt = False, store_path: StoreOpt = None) -> None:
    """Which account is connected, its chats, and replies still waiting for the server."""
    from device.connectors.ledger import Ledger
    from device.connectors.matrix import SOURCE, account

    with clear_errors(), device_store(store_path) as store:
        try:
            acct = account(store)
            ledger = Ledger(store, SOURCE)
            doc = {"matrix": None if acct is None else {
                "homeserver": acct.homeserver, "user_id": acct.user_id, "device_id": acct.device_id,
                "chats": sorted(ledger.get("rooms", {}).values()), "synced": ledger.get("since") is not None,
                "queued_replies": len(ledger.pending())}}
        except LedgerError as exc:
            raise fail(str(exc)) from None
    if json_out:
        print(json.dumps(doc, ensure_ascii=False))
        return
    m = doc["matrix"]
    if m is None:
        console.print("no Matrix account connected: glassmate connect matrix --homeserver URL --user @you:server")
        return
    console.print(f"Matrix: [cyan]{m['user_id']}[/] on {m['homeserver']} (device {m['device_id']}), "
                  f"{len(m['chats'])} chats, {m['queued_replies']} replies waiting", highlight=False)


@app.command("logout")
def logout(store_path: StoreOpt = None) -> None:
    """Sign this device out of Matrix and forget its token; stored messages stay (`glassmate privacy` deletes)."""
    from device.connectors.matrix import MatrixError
    from device.connectors.matrix import logout as sign_out

    with clear_errors(), device_store(store_path) as store:
        try:
            done = sign_out(store, state_dir())
        except MatrixError as exc:
            raise fail(str(exc)) from None
    console.print("signed out of Matrix" if done else "no Matrix account was connected")
