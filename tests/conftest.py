"""Shared fixtures: a small config, the bot with its emulator on a real local port, and a
guard that fails any test trying to reach beyond this machine."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.app import create_app
from bot.clock import FakeClock
from bot.config_loading import load_config

from tests.support.factories import TEST_STORE, BotHarness, write_config
from tests.support.postgres import PgServer

TZ = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")
                                          or self.family == socket.AF_UNIX):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)
    monkeypatch.setattr(socket.socket, "connect", guarded)


def pytest_collection_modifyitems(config, items):
    if TEST_STORE != "postgres":
        return
    skip = pytest.mark.skip(reason="about the file store's own files (journal, shards, checkpoints)")
    for item in items:
        if item.get_closest_marker("file_store"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the whole session (tests/support/postgres.py)."""
    server = PgServer.start()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server) -> str:
    """A DSN on an empty schema of its own."""
    return pg_server.new_schema()


@pytest.fixture(autouse=True)
def store_backend(request, monkeypatch):
    # The suite on PostgreSQL: every config written by write_config names it, and this gives
    # the test (and the bot processes it starts) an empty schema.
    if TEST_STORE == "postgres":
        monkeypatch.setenv("GRIDBOT_STORE_DSN", request.getfixturevalue("pg_dsn"))


@pytest.fixture
def config_path(tmp_path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(TZ, datetime(2026, 11, 25, 9, 30, tzinfo=TZ))  # a Wednesday, a workday


@pytest.fixture
async def harness(aiohttp_client, config_path, clock) -> BotHarness:
    cfg = load_config(config_path)
    app = create_app(cfg, clock=clock)
    client = await aiohttp_client(app)
    h = BotHarness(app, client, clock)
    h.emulator.set_origin(str(client.make_url("")).rstrip("/"))
    return h
