"""The messages accepted and not yet handled, kept at each checkpoint (bot.store_open): a start
finds them without reading every message id of the last two weeks, and never trusts a list
that does not describe the logs as they are."""

from __future__ import annotations

from bot.store_cold import ColdTables

from tests.bot.test_store_cold import WEEK, done, message, started


def count_id_reads(monkeypatch) -> list[str]:
    read: list[str] = []
    real = ColdTables._disk_ids

    def counting(self, shard, table):
        read.append(table)
        return real(self, shard, table)
    monkeypatch.setattr(ColdTables, "_disk_ids", counting)
    return read


async def test_a_restart_finds_the_unhandled_messages_without_reading_the_ids(tmp_path, monkeypatch):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(300)] + [done(n) for n in range(300) if n % 100])
    await store.checkpoint()
    await store.put_many([done(100), message(300)])  # the next checkpoint carries the list on
    await store.close()

    read = count_id_reads(monkeypatch)
    again = await started(tmp_path)
    assert again.unhandled(WEEK) == {"7000000", "7000200", "7000300"}
    assert read == []  # before: every id of both logs, at every start
    # What the journal holds beyond the last checkpoint counts too.
    await again.put_many([message(301), done(0)])
    assert again.unhandled(WEEK) == {"7000200", "7000300", "7000301"}
    again._flusher.cancel()  # killed: no checkpoint, the journal keeps both

    third = await started(tmp_path)
    assert third.unhandled(WEEK) == {"7000200", "7000300", "7000301"}
    assert read == []
    await third.close()


async def test_a_list_that_does_not_describe_the_logs_is_worked_out_again(tmp_path, monkeypatch):
    store = await started(tmp_path)
    await store.put_many([message(n) for n in range(10)] + [done(n) for n in range(8)])
    await store.close()
    # A done mark appended after the list was kept (a crash between the two writes).
    with open(tmp_path / "db" / WEEK / "inbox_done.jsonl", "ab") as f:
        f.write(b'{"id":"7000008"}\n')
    read = count_id_reads(monkeypatch)
    again = await started(tmp_path)
    assert again.unhandled(WEEK) == {"7000009"}
    assert sorted(read) == ["inbox", "inbox_done"]
    await again.close()

    read.clear()
    third = await started(tmp_path)  # the list was written again, for the logs as they are
    assert third.unhandled(WEEK) == {"7000009"}
    assert read == []
    await third.close()
