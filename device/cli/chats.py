"""`glassmate chats …`: what reaches the glasses — per chat and per source allow / mute / priority, and quiet hours,
kept sealed in the wearer's store (the glasses read the same settings; "mute the flat for an hour" said to them
lands there too)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from device.cli.common import JsonOpt, StoreOpt, clear_errors, console, device_store, fail, print_json
from device.messages.delivery import SOURCES, DeliveryPolicy, Level, PolicyError, QuietHours, Rule, parse_clock
from device.messages.store import MessageStore

app = typer.Typer(help="What reaches the glasses: allow / mute / priority per chat or source, and quiet hours.",
                  no_args_is_help=True)

NameArg = Annotated[str | None, typer.Argument(help="the chat, as stored (omit with --source)", show_default=False)]
ForOpt = Annotated[str | None, typer.Option("--for", help="only for a while: 30m, 2h, 1d, 1h30m (default: until "
                                                          "changed)", show_default=False)]
SourceOpt = Annotated[str | None, typer.Option("--source", help=f"a rule for every chat of a source "
                                                                f"({', '.join(SOURCES)}); a chat's own rule beats it",
                                               show_default=False)]
UNITS = {"m": 1, "min": 1, "mins": 1, "minute": 1, "minutes": 1, "h": 60, "hr": 60, "hrs": 60, "hour": 60,
         "hours": 60, "d": 1440, "day": 1440, "days": 1440, "w": 10080, "week": 10080, "weeks": 10080}


def parse_for(text: str) -> timedelta:
    """"2h", "30m", "1h30m", "90 minutes", "1d" → a duration."""
    parts = re.findall(r"(\d+)\s*([a-z]+)", text.lower())
    if not parts or re.sub(r"\d+\s*[a-z]+|\s+", "", text.lower()) or any(u not in UNITS for _, u in parts):
        raise typer.BadParameter(f"{text!r}: write a duration like 30m, 2h, 1d or 1h30m", param_hint="--for")
    minutes = sum(int(n) * UNITS[u] for n, u in parts)
    if minutes <= 0:
        raise typer.BadParameter(f"{text!r} is no time at all", param_hint="--for")
    return timedelta(minutes=minutes)


def stored_chat(store: MessageStore, name: str) -> str:
    """The stored chat `name` means (exactly, else case-insensitively); otherwise an error naming close matches."""
    chats = store.thread_names()
    if name in chats:
        return name
    folded = [c for c in chats if c.casefold() == name.casefold()]
    if len(folded) == 1:
        return folded[0]
    by_lower = {c.casefold(): c for c in chats}
    close = [by_lower[c] for c in get_close_matches(name.casefold(), list(by_lower), n=3, cutoff=0.5)]
    close += [c for c in chats if name.casefold() in c.casefold() and c not in close]
    if close:
        hint = "did you mean " + ", ".join(repr(c) for c in close[:3]) + "?"
    elif chats:
        hint = "stored chats: " + ", ".join(repr(c) for c in chats[:10]) + (" …" if len(chats) > 10 else "")
    else:
        hint = "the store holds no chats yet"
    raise fail(f"no chat named {name!r} in {store.path}; {hint}")


@contextmanager
def _policy(store_path: Path | None, write: bool = True) -> Iterator[tuple[MessageStore, DeliveryPolicy]]:
    """The wearer's store and settings; with `write`, the settings are saved when the block ends (not when it
    fails)."""
    with clear_errors(), device_store(store_path) as store:
        try:
            policy = DeliveryPolicy.load(store)
            yield store, policy
            if write:
                policy.prune(_now())
                policy.save(store)
        except PolicyError as exc:
            raise fail(str(exc)) from None


def _now() -> datetime:
    return datetime.now().astimezone()


def _rule_json(rule: Rule | None) -> dict:
    return rule.to_json() if rule else {"level": Level.ALLOW.value, "until": None}


def _rule_text(rule: Rule | None) -> str:
    if rule is None:
        return "allow (default)"
    return rule.level.value + (f" until {rule.until:%a %H:%M}" if rule.until else "")


@app.command("list")
def list_chats(store_path: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Each stored chat with its rule and unread count; the source rules and quiet hours."""
    now = _now()
    with _policy(store_path, write=False) as (store, policy):
        chats = store.thread_names()
        rows = [{"chat": c, "stored": True, "unread": store.unread_count(c), **_rule_json(_active(policy, c, now))}
                for c in chats]
        # rules for chats the store does not hold (set by voice on the glasses for a chat of a replayed feed)
        rows += [{"chat": c, "stored": False, "unread": 0, **r.to_json()} for c, r in policy.chats.items()
                 if c not in chats and r.active(now)]
        sources = {s: r.to_json() for s, r in policy.sources.items() if r.active(now)}
    if as_json:
        print_json({"chats": rows, "sources": sources, "quiet_hours": policy.quiet.to_json() if policy.quiet
                    else None, "fold_window_s": policy.fold_window_s})
        return
    table = Table(title=f"chats ({store.path})")
    for col in ("chat", "rule", "unread"):
        table.add_column(col, justify="right" if col == "unread" else "left")
    for row in rows:
        rule = _active(policy, row["chat"], now)
        table.add_row(row["chat"] + ("" if row["stored"] else " [dim](not stored)[/]"), _rule_text(rule),
                      str(row["unread"]))
    console.print(table)
    for source, rule in policy.sources.items():
        if rule.active(now):
            console.print(f"source {source}: {_rule_text(rule)}", highlight=False)
    console.print(f"quiet hours: {policy.quiet.describe() if policy.quiet else 'off'}", highlight=False)


def _active(policy: DeliveryPolicy, chat: str, now: datetime) -> Rule | None:
    rule = policy.chats.get(chat)
    return rule if rule is not None and rule.active(now) else None


def _set(level: Level, name: str | None, for_: str | None, source: str | None, store_path: Path | None,
         as_json: bool) -> None:
    if (name is None) == (source is None):
        raise typer.BadParameter("give a chat's name or --source SOURCE (one of them)")
    if source is not None and source not in SOURCES:
        raise typer.BadParameter(f"{source!r} is not a source; sources: {', '.join(SOURCES)}", param_hint="--source")
    until = _now() + parse_for(for_) if for_ else None
    with _policy(store_path) as (store, policy):
        if name is not None:
            name = stored_chat(store, name)
            policy.set_chat(name, level, until)
        else:
            assert source is not None
            policy.set_source(source, level, until)
    target = {"chat": name} if name is not None else {"source": source}
    if as_json:
        print_json(target | Rule(level, until).to_json())
        return
    what = name if name is not None else f"every {source} chat"
    console.print(f"{what}: {_rule_text(Rule(level, until))}", highlight=False)


@app.command()
def allow(name: NameArg = None, for_: ForOpt = None, source: SourceOpt = None, store_path: StoreOpt = None,
          as_json: JsonOpt = False) -> None:
    """A card and a sound for each new burst (the default; beats a source's mute for this chat)."""
    _set(Level.ALLOW, name, for_, source, store_path, as_json)


@app.command()
def mute(name: NameArg = None, for_: ForOpt = None, source: SourceOpt = None, store_path: StoreOpt = None,
         as_json: JsonOpt = False) -> None:
    """Stored and left unread, but no card and no sound."""
    _set(Level.MUTE, name, for_, source, store_path, as_json)


@app.command()
def priority(name: NameArg = None, for_: ForOpt = None, source: SourceOpt = None, store_path: StoreOpt = None,
             as_json: JsonOpt = False) -> None:
    """Always a card, even in quiet hours; it interrupts the thread view."""
    _set(Level.PRIORITY, name, for_, source, store_path, as_json)


@app.command()
def quiet(
    start: Annotated[str, typer.Argument(help="when quiet hours start (22:00, 10pm), or 'off'")],
    end: Annotated[str | None, typer.Argument(help="when they end (07:00); may be past midnight",
                                              show_default=False)] = None,
    store_path: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Quiet hours: only priority chats make a card; the rest come as one summary card when they end."""
    if start.lower() == "off":
        if end is not None:
            raise typer.BadParameter("'off' takes no end time")
        hours = None
    else:
        if end is None:
            raise typer.BadParameter("give the start and the end: glassmate chats quiet 22:00 07:00")
        try:
            hours = QuietHours(parse_clock(start), parse_clock(end))
        except PolicyError as exc:
            raise typer.BadParameter(str(exc)) from None
    with _policy(store_path) as (_, policy):
        policy.quiet = hours
    if as_json:
        print_json({"quiet_hours": hours.to_json() if hours else None})
        return
    console.print(f"quiet hours: {hours.describe() if hours else 'off'}", highlight=False)
