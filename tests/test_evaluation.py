from __future__ import annotations

import json

from device.assistant.core import Assistant
from lab.evaluation import copies_transcript, dialogue_messages, eval_summaries, is_echo


def test_dialogsum_turns_become_messages():
    msgs = dialogue_messages("#Person1#: Hi, Tom.\n#Person2#: Hello!\nno speaker here", "c")
    assert [(m.sender, m.text) for m in msgs] == [("Person1", "Hi, Tom."), ("Person2", "Hello!"),
                                                  ("Someone", "no speaker here")]
    assert msgs[0].ts < msgs[1].ts


def test_echo_and_copy_detection():
    dialogue = "#Person1#: I think you should quit smoking because it is bad for your health and your family."
    assert copies_transcript("Person1: quit. Person2: no.", dialogue)
    assert copies_transcript("He says i think you should quit smoking because it is bad for your health", dialogue)
    assert not copies_transcript("Person1 asks Person2 to quit smoking for health reasons.", dialogue)
    assert is_echo("You summarize chat messages for someone glancing at smart glasses.")
    assert not is_echo("Marco booked Luigi's for Friday at 8pm.")


def test_eval_summaries_scores_real_outputs(tmp_path, engine):
    data = tmp_path / "tiny.jsonl"
    rows = [{"fname": "a", "dialogue": "#Person1#: Dinner at 8 on Friday?\n#Person2#: Yes, see you at Luigi's.",
             "summary": "#Person1# and #Person2# agree to have dinner at Luigi's at 8 on Friday."},
            {"fname": "b", "dialogue": "#Person1#: The plumber comes Thursday.\n#Person2#: I'll be home.",
             "summary1": "#Person2# will be home when the plumber comes on Thursday.",
             "summary2": "A plumber is coming Thursday."}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = eval_summaries(Assistant(engine), data, n=5)
    assert result.n == 2 and result.model == "smollm2-135m"
    assert 0 < result.rougeL <= 1 and 0 <= result.copy_rate <= 1
    assert all(s["total_s"] > 0 for s in result.samples)
