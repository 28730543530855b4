"""The encrypted store: nothing readable on disk, wrong keys and tampering fail loudly, kill -9 loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.messages.inbox import Message
from device.messages.store import MessageStore, StoreError
from device.privacy.crypto import KeyFileError, load_or_create_key

CANARIES = ["canary-ostrich-7f3a9b21", "Zanzibar-canary-sender", "canary thread quokka-55e1"]


def _canary_messages() -> list[Message]:
    t = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    return [Message(CANARIES[2], CANARIES[1], f"the code is {CANARIES[0]}, keep it secret", t),
            Message(CANARIES[2], "Mum", "Lunch at 1pm on Sunday at Bäckerei Schulz", t.replace(minute=5))]


def _files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def test_no_plaintext_on_disk_in_db_or_wal(tmp_path):
    db = tmp_path / "store.db"
    store = MessageStore(db)
    store.add(_canary_messages())
    store.save_derived(CANARIES[2], "summary", "summary-canary-armadillo mentions Bäckerei Schulz",
                       datetime.now(UTC))
    assert Path(f"{db}-wal").exists()  # checked while the WAL still holds the writes
    secrets = [*CANARIES, "keep it secret", "Bäckerei Schulz", "summary-canary-armadillo"]
    for f in _files(db):
        raw = f.read_bytes()
        for secret in secrets:
            assert secret.encode() not in raw, f"{secret!r} readable in {f.name}"
        if shutil.which("strings"):
            out = subprocess.run(["strings", "-n", "4", str(f)], capture_output=True, text=True).stdout
            assert not any(s in out for s in secrets)
    assert store.thread(CANARIES[2]).messages[0].text.startswith("the code is")
    store.close()


def test_wrong_key_is_a_clear_error_and_changes_nothing(tmp_path):
    db = tmp_path / "store.db"
    with MessageStore(db) as store:
        store.add(_canary_messages())
    before = db.read_bytes()
    with pytest.raises(StoreError, match="wrong key"):
        MessageStore(db, key=os.urandom(32))
    assert db.read_bytes() == before
    with MessageStore(db) as store:  # the right key still reads everything
        assert len(store.thread(CANARIES[2]).messages) == 2


def test_passphrase_derives_the_key(tmp_path):
    a = load_or_create_key(tmp_path, passphrase="correct horse battery staple")
    assert a == load_or_create_key(tmp_path, passphrase="correct horse battery staple")
    assert a != load_or_create_key(tmp_path, passphrase="wrong")
    with MessageStore(tmp_path / "s.db", key=a) as store:
        store.add(_canary_messages())
    with pytest.raises(StoreError, match="wrong key"):
        MessageStore(tmp_path / "s.db", key=load_or_create_key(tmp_path, passphrase="wrong"))


def test_key_file_is_private(tmp_path):
    load_or_create_key(tmp_path)
    key = tmp_path / "key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_key(tmp_path)


def test_tampered_or_swapped_rows_fail_loudly(tmp_path):
    db = tmp_path / "store.db"
    with MessageStore(db) as store:
        store.add(_canary_messages())
    raw = sqlite3.connect(db)
    (body,) = raw.execute("SELECT body FROM messages WHERE id=1").fetchone()
    flipped = bytes([body[0]]) + bytes([body[20] ^ 1]).join([body[1:20], body[21:]])
    raw.execute("UPDATE messages SET body=? WHERE id=1", (flipped,))
    raw.commit()
    with MessageStore(db) as store, pytest.raises(StoreError, match="row 1 .* failed authentication"):
        store.thread(CANARIES[2])
    # swapping two rows' bodies is caught too (each body is bound to its row)
    raw.execute("UPDATE messages SET body=? WHERE id=1", (body,))
    b1, b2 = (r[0] for r in raw.execute("SELECT body FROM messages ORDER BY id"))
    raw.execute("UPDATE messages SET body=? WHERE id=1", (b2,))
    raw.execute("UPDATE messages SET body=? WHERE id=2", (b1,))
    raw.commit()
    with MessageStore(db) as store, pytest.raises(StoreError, match="failed authentication"):
        list(store.messages())
    # nothing was dropped: both rows are still there
    assert raw.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2


WRITER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime, timedelta
    from device.messages.inbox import Message
    from device.messages.store import MessageStore
    store = MessageStore(sys.argv[1])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    i = 0
    while True:
        store.add([Message("soak", "writer", f"message number {i}", t0 + timedelta(seconds=i))])
        print(i, flush=True)  # acknowledged only after add() returned
        i += 1
""")


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path):
    db = tmp_path / "store.db"
    MessageStore(db).close()  # create the key and schema first
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    acked = []
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with MessageStore(db) as store:
        texts = {m.text for m in store.thread("soak").messages}
    missing = [i for i in acked if f"message number {i}" not in texts]
    assert missing == []
    assert len(texts) >= len(acked)


def test_full_disk_is_a_clear_error_and_nothing_half_written(tmp_path):
    db = tmp_path / "store.db"
    with MessageStore(db) as store:
        store.add(_canary_messages()[:1])
        store.db.execute("PRAGMA max_page_count=" + str(store.db.execute("PRAGMA page_count").fetchone()[0]))
        big = [Message("x", "y", os.urandom(4000).hex(), datetime(2026, 1, 1, 0, i, tzinfo=UTC)) for i in range(50)]
        with pytest.raises(StoreError, match="full"):
            store.add(big)
        assert store.thread("x").messages == []
        assert len(store.thread(CANARIES[2]).messages) == 1
