"""Reply evaluation on IRC-format data: parsing reply links, ranking the true reply, draft diversity."""

from __future__ import annotations

import pytest

from device.assistant.core import Assistant
from device.messages.inbox import FeedError
from lab.irc import client_id, reply_pairs, strip_address
from lab.reply_evaluation import distinct, eval_replies, similarity
from tests.conftest import SHARED

# A chat written for these tests, in the corpus' format (line numbers are 0-based; `i j -`: j replies to i).
RAW = """=== ann has joined #help
[10:00] <ann> my wifi drops every few minutes on the new laptop
[10:01] <ubottu> ann: please see !wifi
[10:01] <bob> ann: which chipset? run lspci and look for Network controller
[10:02] <ann> bob: it says Intel AX210
[10:02] <cai> anyone know how to mount an iso file?
[10:03] <bob> ann: try turning off power saving for the card, that fixed mine
[10:03] <dee> cai: sudo mount -o loop file.iso /mnt
[10:04] <cai> dee: thanks, that worked
[10:04] <ann> bob: that did it, no drops for five minutes now
[10:05] <eve> how do I see free disk space?
[10:05] <fay> eve: df -h shows it per filesystem
[10:06] <eve> fay: perfect, thank you
[10:06] <gus> is there a way to make the terminal font bigger?
[10:07] <hal> gus: ctrl and plus in most terminals
[10:07] <gus> hal: oh nice, simple
"""
LINKS = """0 0 -
1 1 -
1 3 -
3 4 -
4 6 -
5 5 -
5 7 -
7 8 -
6 9 -
10 10 -
10 11 -
11 12 -
13 13 -
13 14 -
14 15 -
2 2 -
"""


@pytest.fixture
def irc_folder(tmp_path):
    (tmp_path / "2026-01-05_10.raw.txt").write_text(RAW)
    (tmp_path / "2026-01-05_10.annotation.txt").write_text(LINKS)
    return tmp_path


def test_reply_pairs_follow_the_links_and_drop_bots_and_system_lines(irc_folder):
    pairs = reply_pairs(irc_folder)
    got = [(p.context[-1].nick, p.reply.nick) for p in pairs]
    assert got == [("ann", "bob"), ("bob", "ann"), ("ann", "bob"), ("cai", "dee"), ("dee", "cai"), ("bob", "ann"),
                   ("eve", "fay"), ("fay", "eve"), ("gus", "hal"), ("hal", "gus")]
    third = pairs[2]
    assert [line.nick for line in third.context] == ["bob", "ann"]  # two lines of its chain
    assert all(p.reply.nick != "ubottu" for p in pairs)
    assert strip_address("bob: try turning off power saving") == "try turning off power saving"
    assert client_id("Bob") == client_id("bob") and "bob" not in client_id("bob")


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(FeedError, match="no \\*.raw.txt"):
        reply_pairs(tmp_path)
    with pytest.raises(FeedError, match="not a folder"):
        reply_pairs(tmp_path / "missing")
    (tmp_path / "x.raw.txt").write_text(RAW)
    (tmp_path / "x.annotation.txt").write_text("1 three -\n")
    with pytest.raises(FeedError, match="x.annotation.txt:1"):
        reply_pairs(tmp_path)


def test_diversity_measures():
    same = ["Sure, see you at 8!", "sure see you at 8", "Sure, see you at 8."]
    varied = ["Sure, see you at 8!", "Sorry, I can't make it tonight.", "Can we do 9 instead?"]
    assert distinct(same, 2) == pytest.approx(4 / 12)
    assert distinct(varied, 2) == 1.0
    assert similarity(same[0], same[1]) == 1.0 and similarity(varied[0], varied[1]) < 0.6


def test_eval_replies_on_real_model_outputs(irc_folder, engine):
    result = eval_replies(Assistant(engine), irc_folder, n_rank=4, n_drafts=2)
    assert result.n_ranked == 4 and result.n_drafted == 2 and result.adapter is None
    assert 0.1 <= result.mrr <= 1.0 and 0.0 <= result.p_at_1 <= 1.0
    assert 0.0 < result.distinct_2 <= 1.0 and result.identical_rate == 0.0  # the assistant repairs duplicates
    assert 0.0 <= result.json_valid_rate <= 1.0


@pytest.mark.skipif(not (SHARED / "ubuntu_irc" / "dev").is_dir(), reason="needs ../shared/data/ubuntu_irc")
def test_dev_split_yields_many_users_pairs():
    pairs = reply_pairs(SHARED / "ubuntu_irc" / "dev")
    assert len(pairs) > 1000 and len({p.user for p in pairs}) > 200


def test_the_replier_reads_their_own_earlier_lines_as_me(irc_folder):
    from lab.irc import pair_messages

    third = reply_pairs(irc_folder)[2]  # bob answers ann, after bob's own question
    assert [m.sender for m in pair_messages(third)] == ["me", "ann"]
    assert third.id == "2026-01-05_10.raw.txt:6"


def test_replies_adapter_data_and_the_eval_refuses_pairs_it_trained_on(irc_folder, engine):
    from federated.task_adapters import draft_replies_data, recipe_for

    td = draft_replies_data(irc_folder, n=5)
    assert len(td.examples) == len(td.ids) == 5 and len(set(td.ids)) == 5
    texts = {strip_address(p.reply.text) for p in reply_pairs(irc_folder)}
    assert all(ex.target in texts and len(ex.target.split()) >= 2 for ex in td.examples)
    assert "My next message:" in td.examples[0].messages[1].content
    assert draft_replies_data(irc_folder, n=5).ids == td.ids  # seeded
    assert recipe_for("smollm2-135m", "draft_replies").holdout == 0  # held out by folder, not by rows
    with pytest.raises(FeedError, match="trained the adapter"):
        eval_replies(Assistant(engine), irc_folder, n_rank=3, n_drafts=0, exclude_ids=set(td.ids))
