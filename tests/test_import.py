"""Chat-export import: the WhatsApp, Telegram and Signal parsers on invented exports, and `glassmate import` end to
end into a store under a temporary GLASSMATE_HOME. No model is loaded: the ask index step finds no embedder there."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from device.cli import app
from device.messages.exports import (
    ChatExport,
    local_zone,
    parse_signal,
    parse_telegram,
    parse_whatsapp,
    whatsapp_chat_name,
)
from device.messages.inbox import WEARER, FeedError
from device.messages.store import MessageStore
from tests.conftest import glassmate_home

EXPORTS = Path(__file__).resolve().parent / "fixtures" / "exports"
NEW_YORK, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
runner = CliRunner()


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


def senders(export: ChatExport) -> set[str]:
    return {m.sender for m in export.messages}


def located(path: Path, rest: str) -> str:
    """A regex for an error that starts with `path` (escaped) followed by `rest`."""
    return "^" + re.escape(str(path)) + rest


def flat(text: str) -> str:
    """Console output without the line breaks rich puts into long lines (and paths)."""
    return "".join(text.split())


# -- WhatsApp ---------------------------------------------------------------------------------------------------------
def test_whatsapp_android_english_us_dates_with_narrow_spaces():
    e = parse_whatsapp(EXPORTS / "whatsapp_android_en.txt", me="Sam Okafor", tz="America/New_York")
    assert e.source == "whatsapp" and e.chats == ["whatsapp_android_en"]
    assert len(e.messages) == 10
    assert e.skipped == {"deleted": 1, "media": 1, "system": 3}
    assert senders(e) == {"Priya Raman", "Tomás Ferreira", "Lena Vogt", WEARER}
    assert sum(m.from_wearer for m in e.messages) == 4
    assert e.messages[0].ts == at(NEW_YORK, 2024, 12, 30, 19, 2) and e.messages[0].ts.tzinfo == NEW_YORK
    assert e.messages[-1].ts == at(NEW_YORK, 2025, 1, 1, 12, 16)
    assert e.messages[-1].ts.isoformat() == "2025-01-01T12:16:00-05:00"
    assert [m.ts.hour for m in e.messages if m.text == "Happy new year!!"] == [0]  # 12:03 AM is just after midnight
    assert e.messages[3].text == "Plan:\n- meet at the gym 10am\n- lunch at Kiko's after\n- bring chalk, I'm out"
    assert e.notes == []  # 12/30/24 settles the order: month first


def test_whatsapp_ios_german_with_direction_marks():
    e = parse_whatsapp(EXPORTS / "whatsapp_ios_de.txt", chat="Oma", me="Jonas", tz="Europe/Berlin")
    assert e.chats == ["Oma"] and {m.thread for m in e.messages} == {"Oma"}
    assert len(e.messages) == 9
    assert e.skipped == {"deleted": 1, "media": 2, "system": 1}
    assert senders(e) == {"Oma Hilde", WEARER}
    assert e.messages[0].ts == at(BERLIN, 2024, 12, 24, 18, 0, 15)
    assert e.messages[-1].ts == at(BERLIN, 2025, 1, 1, 10, 16, 20)
    assert e.messages[2].text == "Das ist der Stollen von heute.\nRezept:\n500 g Mehl\n250 g Butter"
    assert "Ja, gegen drei. Ich bringe Lena mit." in [m.text for m in e.messages]  # the "edited" tag is dropped
    assert not any("\u200e" in m.text or "weggelassen" in m.text for m in e.messages)


def test_whatsapp_android_german_dotted_dates_assume_day_first():
    e = parse_whatsapp(EXPORTS / "whatsapp_android_de.txt", me="Jonas", tz="Europe/Berlin")
    assert len(e.messages) == 9
    assert e.skipped == {"deleted": 1, "media": 1, "system": 2}
    assert senders(e) == {"Mara Klein", "Felix Brandt", WEARER}
    assert e.messages[0].ts == at(BERLIN, 2025, 1, 3, 18, 25)
    assert e.messages[-1].ts == at(BERLIN, 2025, 1, 8, 19, 30)
    assert e.messages[3].text == "Einkaufsliste:\nMilch\nEier\nSpülmittel"
    assert len(e.notes) == 1 and "day-first" in e.notes[0]  # no day over 12: the order is an assumption, said so


def test_whatsapp_date_order_from_the_clock_when_no_date_settles_it(tmp_path):
    us = tmp_path / "us.txt"
    us.write_text("1/2/25, 9:05\u202fPM - Ann: hi\n1/3/25, 9:06\u202fPM - Bo: yo\n", encoding="utf-8")
    e = parse_whatsapp(us, tz="UTC")
    assert e.messages[0].ts.month == 1 and e.messages[0].ts.day == 2 and "month-first" in e.notes[0]
    world = tmp_path / "world.txt"
    world.write_text("01/02/2025, 21:05 - Ann: hi\n", encoding="utf-8")
    e = parse_whatsapp(world, tz="UTC")
    assert (e.messages[0].ts.day, e.messages[0].ts.month) == (1, 2) and "day-first" in e.notes[0]


def test_whatsapp_conflicting_date_orders_are_an_error(tmp_path):
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("13/01/2025, 10:00 - Ann: a\n01/02/2025, 10:01 - Bo: b\n01/13/2025, 10:02 - Ann: c\n",
                     encoding="utf-8")
    with pytest.raises(FeedError, match=located(mixed, r":3: 01/13/2025 puts the month first, but line 1")):
        parse_whatsapp(mixed, tz="UTC")


def test_whatsapp_lines_that_only_look_like_messages(tmp_path):
    chat = tmp_path / "chat.txt"
    chat.write_text('[02.01.25, 10:00:00] Mara hat den Betreff zu „Urlaub: Rom“ geändert\n'
                    '[02.01.25, 10:01:00] Oma: \u200eVerpasster Sprachanruf\n'
                    '[02.01.25, 10:02:00] Tom "T" Li: Video call later?\n'
                    '[02.01.25, 10:03:00] Oma: \u200eLocation: https://maps.example.com/?q=1,2\n', encoding="utf-8")
    e = parse_whatsapp(chat, tz="UTC")
    assert [(m.sender, m.text) for m in e.messages] == [('Tom "T" Li', "Video call later?")]
    assert e.skipped == {"call": 1, "media": 1, "system": 1}


def test_whatsapp_chat_name_from_the_file_name(tmp_path):
    assert whatsapp_chat_name(Path("WhatsApp Chat with Climbing crew.txt")) == "Climbing crew"
    assert whatsapp_chat_name(Path("WhatsApp Chat mit Oma.txt")) == "Oma"
    assert whatsapp_chat_name(Path("WhatsApp Chat with Oma (1).txt")) == "Oma"
    folder = tmp_path / "WhatsApp Chat - Book club"
    folder.mkdir()
    assert whatsapp_chat_name(folder / "_chat.txt") == "Book club"
    assert whatsapp_chat_name(Path("export.txt")) == "export"


def test_whatsapp_malformed(tmp_path):
    bad = EXPORTS / "whatsapp_bad.txt"
    with pytest.raises(FeedError, match=located(bad, r":4: 31/31/2025 is not a date")):
        parse_whatsapp(bad, tz="UTC")
    headless = tmp_path / "headless.txt"
    headless.write_text("\nhello there\n12/30/24, 7:02 PM - Ann: hi\n", encoding="utf-8")
    with pytest.raises(FeedError, match=located(headless, r":2: not a WhatsApp chat export")):
        parse_whatsapp(headless, tz="UTC")
    only_system = tmp_path / "system.txt"
    only_system.write_text("12/30/24, 7:02 PM - Messages and calls are end-to-end encrypted.\n", encoding="utf-8")
    with pytest.raises(FeedError, match=located(only_system, r":1: no chat messages in this export \(only 1 system")):
        parse_whatsapp(only_system, tz="UTC")
    with pytest.raises(FeedError, match="sends no message in this export"):
        parse_whatsapp(EXPORTS / "whatsapp_ios_de.txt", me="Jonas K.", tz="UTC")
    with pytest.raises(FeedError, match="unknown time zone 'Mars/Olympus'"):
        parse_whatsapp(EXPORTS / "whatsapp_ios_de.txt", tz="Mars/Olympus")


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"),
    (b"  \n\n", "the file is empty"),
    (b"12/30/24, 7:02 PM - Ann: hi\n12/30/24, 7:03 PM - Bo: caf\xe9\n", "2: not valid UTF-8"),
    (b"12/30/24, 7:02 PM - Ann: hi\n12/30/24, 7:03 PM - Bo: a\x00b\n", "2: contains a NUL character"),
])
def test_unreadable_text_is_refused_with_its_line(tmp_path, content, message):
    for parse, name in ((parse_whatsapp, "chat.txt"), (parse_signal, "chat.md"), (parse_telegram, "result.json")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(FeedError, match=located(path, f":{message}" if message[0].isdigit() else f": {message}")):
            parse(path)


def test_a_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + (EXPORTS / "whatsapp_android_de.txt").read_bytes())
    assert len(parse_whatsapp(path, me="Jonas", tz="UTC").messages) == 9


def test_the_default_zone_is_this_machines(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone() == ZoneInfo("Asia/Tokyo")
    e = parse_whatsapp(EXPORTS / "whatsapp_android_de.txt")
    assert e.messages[0].ts.utcoffset().total_seconds() == 9 * 3600
    assert any("no wearer named" in n for n in e.notes) and WEARER not in senders(e)


# -- Telegram ---------------------------------------------------------------------------------------------------------
def test_telegram_single_chat():
    e = parse_telegram(EXPORTS / "telegram_single.json", me="Alex Moreau", tz="Europe/Berlin")
    assert e.source == "telegram" and e.chats == ["Lisbon trip"]
    assert len(e.messages) == 10
    assert e.skipped == {"media": 2, "system": 2}
    assert senders(e) == {"Nadia Haddad", "Ben Carter", WEARER}
    assert e.messages[0].ts == at(BERLIN, 2025, 3, 2, 18, 1, 12) and e.messages[0].ts.tzinfo == BERLIN
    assert e.messages[-1].ts == at(BERLIN, 2025, 3, 5, 22, 45, 31)
    texts = [m.text for m in e.messages]
    assert "Can we stay near Alfama? Hotel list: https://example.com/hotels" in texts  # entities joined
    assert "@nadia_h can you share the booking code?" in texts
    assert "The view from the place I found" in texts  # a photo's caption is kept
    assert "Budget so far:\n- flights 180€\n- flat 240€ each" in texts
    assert e.messages[8].text == "It's K7Q2ZP" and e.messages[8].ts == at(BERLIN, 2025, 3, 4, 12, 5, 9)  # `date` only


def test_telegram_full_export_knows_the_wearer_by_id():
    e = parse_telegram(EXPORTS / "telegram_full.json", tz="Europe/Berlin")
    assert e.chats == ["Nadia Haddad", "Book club"]
    assert len(e.messages) == 9
    assert e.skipped == {"media": 1, "system": 1}
    assert senders(e) == {"Nadia Haddad", "Rosa Lindqvist", "Ben Carter", WEARER}
    assert [m.sender for m in e.messages if m.thread == "Nadia Haddad"] == [
        "Nadia Haddad", WEARER, "Nadia Haddad", WEARER, "Nadia Haddad"]
    assert e.messages[0].ts == at(BERLIN, 2025, 4, 10, 9, 0, 5)
    assert e.messages[-1].ts == at(BERLIN, 2025, 4, 2, 18, 45, 48)
    assert e.messages[3].text == "That green curry was\nexcellent. Next time my treat"
    assert e.notes == []


def test_telegram_malformed(tmp_path):
    bad = EXPORTS / "telegram_bad.json"
    with pytest.raises(FeedError, match=located(bad, r":27: not valid JSON \(Expecting ',' delimiter at column 4\)")):
        parse_telegram(bad)
    doc = json.loads((EXPORTS / "telegram_single.json").read_text(encoding="utf-8"))
    for key in ("date", "date_unixtime"):
        del doc["messages"][3][key]  # message id 104
    undated = tmp_path / "result.json"
    undated.write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
    line = next(n for n, text in enumerate(undated.read_text().split("\n"), 1) if '"id": 104' in text)
    missing = "chat 'Lisbon trip', message id 104: missing 'date'$"
    with pytest.raises(FeedError, match=located(undated, f":{line}: {missing}")):
        parse_telegram(undated)
    undated.write_text(json.dumps(doc), encoding="utf-8")  # one line: the id is still a locator
    with pytest.raises(FeedError, match=located(undated, f":1: {missing}")):
        parse_telegram(undated)
    undated.write_text(json.dumps({"messages_of": []}), encoding="utf-8")
    with pytest.raises(FeedError, match="not a Telegram Desktop export"):
        parse_telegram(undated)


def test_telegram_text_no_store_can_hold_is_refused(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"name": "X", "type": "personal_chat", "id": 1, "messages": [{"id": 7, "type": "message", '
                    '"date_unixtime": "1740934800", "from": "Kai", "from_id": "user9", "text": "a\\ud800b"}]}',
                    encoding="utf-8")
    with pytest.raises(FeedError, match=located(path, ":1: chat 'X', message id 7: 'text' is not valid Unicode")):
        parse_telegram(path)


# -- Signal -----------------------------------------------------------------------------------------------------------
def test_signal_export_chat_folder():
    folder = EXPORTS / "signal" / "Climbing crew"
    e = parse_signal(folder, tz="Europe/Berlin")
    assert e.source == "signal" and e.chats == ["Climbing crew"]
    assert len(e.messages) == 8
    assert e.skipped == {"call": 1, "deleted": 1, "media": 1}
    assert senders(e) == {"Priya", "Tomás", WEARER}  # signal-export writes the wearer as "Me"
    assert e.messages[0].ts == at(BERLIN, 2025, 2, 14, 18, 2, 11)
    assert e.messages[-1].ts == at(BERLIN, 2025, 2, 16, 20, 15)
    texts = [m.text for m in e.messages]
    assert "Packing list:\n- quickdraws\n- helmet\n- snacks for the approach" in texts
    assert "New rope came today" in texts  # the image link is dropped, the caption kept
    assert "I'll bring the quickdraws" in texts  # the quoted message is not repeated in the reply
    assert "Meet at the car park at 8?" in texts  # reactions are not text
    assert parse_signal(folder / "chat.md", chat="Crag", tz="Europe/Berlin").chats == ["Crag"]


def test_signal_malformed(tmp_path):
    bad = EXPORTS / "signal_bad" / "Bad chat"
    with pytest.raises(FeedError, match=located(bad / 'chat.md', r":5: 2025-02-30 10:00:00 is not a valid date")):
        parse_signal(bad)
    with pytest.raises(FeedError, match=located(tmp_path, r": no chat.md in this folder")):
        parse_signal(tmp_path)
    headless = tmp_path / "chat.md"
    headless.write_text("# Chat with Mia\n[2025-02-27 18:02:11] Mia: hi\n", encoding="utf-8")
    with pytest.raises(FeedError, match=located(headless, r":1: not a signal-export chat.md")):
        parse_signal(headless)


# -- the command ------------------------------------------------------------------------------------------------------
def stored(home: Path) -> list:
    with glassmate_home(home), MessageStore(home / "state" / "glassmate.db") as store:
        return [m for _, m in store.messages()]


def test_import_stores_once_and_says_so(tmp_path):
    home = tmp_path / "home"
    with glassmate_home(home):
        args = ["import", "whatsapp", str(EXPORTS / "whatsapp_ios_de.txt"), "--chat", "Oma", "--me", "Jonas",
                "--tz", "Europe/Berlin", "--json"]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        doc = json.loads(first.stdout)
        assert (doc["chats"], doc["parsed"], doc["added"], doc["duplicates"]) == (["Oma"], 9, 9, 0)
        assert doc["skipped"] == {"deleted": 1, "media": 2, "system": 1}
        assert doc["index"] is None and "glassmate index sync" in doc["index_note"]  # no embedder in this home
        assert "glassmate index sync" in " ".join(first.stderr.split())
        again = runner.invoke(app, args)
        assert again.exit_code == 0, again.output
        assert (json.loads(again.stdout)["added"], json.loads(again.stdout)["duplicates"]) == (0, 9)
        assert json.loads(again.stdout)["index_note"] is None  # nothing new: nothing to index
    with glassmate_home(home), MessageStore(home / "state" / "glassmate.db") as store:
        assert store.unread_count("Oma") == 0, "an export is history the wearer read: no card, no unread count"
    messages = stored(home)
    assert len(messages) == 9 and {m.thread for m in messages} == {"Oma"}
    assert messages[0].ts == at(BERLIN, 2024, 12, 24, 18, 0, 15) and messages[0].sender == "Oma Hilde"
    assert "Das ist der Stollen von heute.\nRezept:\n500 g Mehl\n250 g Butter" in [m.text for m in messages]


def test_import_every_format_into_one_store(tmp_path):
    home = tmp_path / "home"
    with glassmate_home(home):
        for args, added in (
            (["whatsapp", str(EXPORTS / "whatsapp_android_en.txt"), "--me", "Sam Okafor", "--tz", "America/New_York"],
             10),
            (["telegram", str(EXPORTS / "telegram_full.json"), "--tz", "Europe/Berlin"], 9),
            (["signal", str(EXPORTS / "signal" / "Climbing crew" / "chat.md"), "--tz", "Europe/Berlin"], 8),
        ):
            result = runner.invoke(app, ["import", *args, "--no-index"])
            assert result.exit_code == 0, result.output
            assert f"{added} added" in result.stdout and "store:" in result.stdout
    threads = {m.thread for m in stored(home)}
    assert threads == {"whatsapp_android_en", "Nadia Haddad", "Book club", "Climbing crew"}
    assert len(stored(home)) == 27


def test_a_malformed_export_stores_nothing(tmp_path):
    home = tmp_path / "home"
    with glassmate_home(home):
        for args, where in (
            (["whatsapp", str(EXPORTS / "whatsapp_bad.txt")], f"{EXPORTS / 'whatsapp_bad.txt'}:4:"),
            (["telegram", str(EXPORTS / "telegram_bad.json")], f"{EXPORTS / 'telegram_bad.json'}:27:"),
            (["signal", str(EXPORTS / "signal_bad" / "Bad chat")], f"{EXPORTS / 'signal_bad' / 'Bad chat'}/chat.md:5:"),
        ):
            result = runner.invoke(app, ["import", *args, "--tz", "UTC"])
            assert result.exit_code == 1, result.output
            assert flat(where) in flat(result.stderr)
        assert not (home / "state" / "glassmate.db").exists()  # parsed before the store is even opened
        ok = runner.invoke(app, ["import", "signal", str(EXPORTS / "signal" / "Climbing crew"), "--no-index"])
        assert ok.exit_code == 0, ok.output
        before = len(stored(home))
        copy = tmp_path / "WhatsApp Chat with Climbing crew.txt"
        shutil.copy(EXPORTS / "whatsapp_android_en.txt", copy)
        with copy.open("a", encoding="utf-8") as f:
            f.write("13/01/25, 10:00 - Priya Raman: this date says day first\n")
        result = runner.invoke(app, ["import", "whatsapp", str(copy), "--no-index"])
        assert result.exit_code == 1 and flat(f"{copy}:19:") in flat(result.stderr)
    assert len(stored(home)) == before == 8


def test_an_unavailable_index_does_not_fail_the_import(tmp_path, monkeypatch):
    from device.ask.embedder import EmbedderError
    from device.cli import imports

    built = tmp_path / "home" / "models" / "built" / "minilm-l6-v2"
    built.mkdir(parents=True)
    (built / "model.onnx").write_bytes(b"not a model")

    def no_index(store, threads):
        raise EmbedderError("the search index needs faiss: pip install 'glassmate[ask]'")

    monkeypatch.setattr(imports, "open_index", no_index)
    with glassmate_home(tmp_path / "home"):
        result = runner.invoke(app, ["import", "telegram", str(EXPORTS / "telegram_single.json"), "--me",
                                     "Alex Moreau"])
    assert result.exit_code == 0, result.output
    assert "10 added" in result.stdout
    assert "glassmate[ask]" in result.stderr and "glassmate index sync" in " ".join(result.stderr.split())
