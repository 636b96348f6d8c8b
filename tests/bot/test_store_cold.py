"""Raw messages and done marks (the cold tables): appended to disk at each checkpoint, found
again by id, and not held in memory once written — a district's inbox copies were 7 GB of RAM
and a week of them rewritten every ten seconds."""

from __future__ import annotations

from datetime import date

from bot import store_cold
from bot.store import Store
from bot.store_files import write_table

from tests.support.stores import started_store

WED = date(2026, 11, 25)
WEEK = "2026-W48"


def message(n: int) -> tuple:
    return ("inbox", {"id": f"{7000000 + n}", "event": {"kind": "text", "key": f"{7000000 + n}", "sender": "lisi",
                                                        "create_time": 1764034200 + n, "content": f"入户走访{n}户"},
                      "received": 1764034200.5 + n}, WEEK)


def done(n: int) -> tuple:
    return ("inbox_done", {"id": f"{7000000 + n}"}, WEEK)


async def started(path) -> Store:
    return await started_store(path, WED)


async def test_written_messages_leave_memory_and_are_found_again(tmp_path):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(200)] + [done(n) for n in range(199)])
    await store.put("reports", {"id": "R1", "userid": "lisi", "grid": "g1", "status": "active", "items": []},
                    shard=WEEK)
    await store.checkpoint()
    assert store.stats()["documents"] < 10  # the report and a few meta documents, no message
    assert store.get("inbox", "7000005")["event"]["content"] == "入户走访5户"
    assert store.ids("inbox", [WEEK]) - store.ids("inbox_done", [WEEK]) == {"7000199"}
    assert len(list(store.docs("inbox"))) == 200
    await store.close()

    again = await started(tmp_path)
    assert again.stats()["documents"] < 10
    assert again.has("inbox", "7000123", WEEK) and not again.has("inbox", "7000999", WEEK)
    assert again.shard_of("inbox", "7000123") == WEEK
    await again.close()


async def test_a_checkpoint_appends_only_what_is_new(tmp_path):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(100)])
    await store.checkpoint()
    log = tmp_path / "db" / WEEK / "inbox.jsonl"
    before = log.read_bytes()
    await store.put_many([message(100)])
    await store.checkpoint()
    after = log.read_bytes()
    assert after.startswith(before) and after[len(before):].count(b"\n") == 1
    await store.close()


async def test_a_torn_last_line_is_skipped_then_cut_off(tmp_path):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(3)])
    await store.checkpoint()
    log = tmp_path / "db" / WEEK / "inbox.jsonl"
    # An append a crash cut short: the journal still holds what it was writing.
    with open(log, "ab") as f:
        f.write(b'{"id":"7000003","event":{"kind":"te')
    reader = Store(tmp_path, readonly=True)
    reader.load(today=WED)
    assert sorted(d["id"] for d in reader.docs("inbox")) == ["7000000", "7000001", "7000002"]
    await store.put_many([message(3), message(4)])
    await store.checkpoint()
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(ln.startswith(b'{"id":"') and ln.endswith(b"}") for ln in lines[:-1])
    assert sorted(store.ids("inbox", [WEEK])) == [f"700000{n}" for n in range(5)]
    await store.close()


async def test_messages_stored_before_this_layout_are_still_read(tmp_path):
    # Earlier versions kept a week's messages in one TinyDB file, rewritten at each checkpoint.
    old = [message(n)[1] for n in range(3)]
    write_table(tmp_path / "db" / WEEK / "inbox.json", "inbox", old)
    store = await started(tmp_path)
    assert store.has("inbox", "7000001", WEEK)
    await store.put_many([message(3)])
    await store.checkpoint()
    assert sorted(d["id"] for d in store.docs("inbox", [WEEK])) == [f"700000{n}" for n in range(4)]
    assert store.get("inbox", "7000002")["event"]["content"] == "入户走访2户"
    await store.close()


async def test_message_ids_with_quotes_or_backslashes_are_found_after_a_restart(tmp_path):
    # Ids are read by a regex over the file; one it cannot take sends the file to the parser.
    odd = ['a"b', "c\\d", "e\\\"f"]
    store = await started(tmp_path)
    await store.put_many([("inbox", {"id": key, "event": {}}, WEEK) for key in odd] + [message(1)])
    await store.close()
    again = await started(tmp_path)
    assert again.ids("inbox", [WEEK]) == {*odd, "7000001"}
    await again.close()


async def test_a_restart_reads_the_message_ids_from_their_id_file_not_the_messages(tmp_path):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(300)] + [done(n) for n in range(299)])
    await store.checkpoint()
    await store.put_many([message(300), done(299)])
    await store.close()
    folder = tmp_path / "db" / WEEK
    assert (folder / "inbox.ids").exists() and (folder / "inbox_done.ids").exists()

    store_cold.ID_FILE_READS["scans"] = 0
    again = await started(tmp_path)
    assert again.ids("inbox", [WEEK]) - again.ids("inbox_done", [WEEK]) == {"7000300"}
    assert again.has("inbox", "7000123", WEEK) and not again.has("inbox", "7000999", WEEK)
    assert store_cold.ID_FILE_READS["scans"] == 0  # before: both logs scanned at every start
    await again.close()


async def test_an_id_file_out_of_step_with_its_log_is_not_trusted_and_is_made_again(tmp_path):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(10)])
    await store.checkpoint()
    await store.close()
    folder = tmp_path / "db" / WEEK
    kept = (folder / "inbox.ids").read_bytes()
    # A crash after the log's append and before its ids': the log has one message more.
    with open(folder / "inbox.jsonl", "ab") as f:
        f.write(b'{"id":"7000077","event":{"kind":"text","key":"7000077","sender":"lisi"}}\n')
    store_cold.ID_FILE_READS["scans"] = 0
    again = await started(tmp_path)
    assert again.has("inbox", "7000077", WEEK)  # found by scanning the log
    assert store_cold.ID_FILE_READS["scans"] == 1
    await again.close()
    assert (folder / "inbox.ids").read_bytes() != kept  # made again, for the log as it is now
    # A torn id file (cut inside its last append) is not trusted either.
    (folder / "inbox.ids").write_bytes(kept[:-3])
    store_cold.ID_FILE_READS["scans"] = 0
    third = await started(tmp_path)
    assert third.ids("inbox", [WEEK]) == {f"{7000000 + n}" for n in range(10)} | {"7000077"}
    assert store_cold.ID_FILE_READS["scans"] == 1
    await third.put_many([message(20)])
    await third.checkpoint()
    await third.close()
    store_cold.ID_FILE_READS["scans"] = 0
    fourth = await started(tmp_path)
    assert "7000020" in fourth.ids("inbox", [WEEK]) and "7000077" in fourth.ids("inbox", [WEEK])
    assert store_cold.ID_FILE_READS["scans"] == 0
    await fourth.close()
