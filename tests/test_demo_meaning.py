"""What `make demo` shows as notifications and catch-ups, on the real test model: the sample inbox replayed as the
glasses meet it, and every shown text read against the misreadings the meaning set records for the sample inbox
(the six demo errors of issue 25: `inbox-*` in tests/fixtures/meaning/chats.jsonl). The test model is one the
catalog does not trust to paraphrase (`paraphrase = false`): the glasses show it the messages themselves, and this
test holds the whole path — catalog, CLI, demo loop — to that. The default model's wording is read in
docs/gallery.md."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from device.cli import app
from lab.meaning import QUOTED, misreadings, read_set

MEANING = Path(__file__).parent / "fixtures" / "meaning" / "chats.jsonl"


def test_the_demo_shows_none_of_the_sample_inboxs_known_misreadings(tmp_path, monkeypatch, model_spec):
    monkeypatch.setenv("GLASSMATE_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / model_spec.file).symlink_to(model_spec.path)
    result = CliRunner().invoke(app, ["demo", "--json", "--model", model_spec.name])
    assert result.exit_code == 0, result.output
    cards = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    cases = [c for c in read_set(MEANING) if c.id.startswith("inbox-")]
    assert len(cases) == 6 and cards
    shown = []
    for case in cases:
        thread = case.messages[0].thread
        for card in (c for c in cards if c["thread"] == thread):
            shown.append(card)
            # a quoted catch-up is judged only on its choice of messages; a notification that is the message as
            # written is the chat itself (as in `glassmate eval summaries --meaning`)
            quoted = card["catch_up"].get("guard", {}).get("action") in QUOTED
            as_written = card["notification"].get("guard", {}).get("action") == "verbatim"
            errors = misreadings(card["catch_up"]["text"], case, summary=True, quoted=quoted) + \
                ([] if as_written else misreadings(card["notification"]["text"], case, summary=False))
            assert not errors, (case.id, errors, card["catch_up"]["text"], card["notification"]["text"])
    assert {c["thread"] for c in shown} == {case.messages[0].thread for case in cases}
