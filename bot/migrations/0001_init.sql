-- The store's documents: one row per document, in a partition per ISO week (created by the bot
-- when a week is first written, bot.pg_schema.ensure_partition); `main` holds the long-lived
-- tables; the default partition anything else. `doc` is json, not jsonb: a document reads back
-- exactly as it was written (key order, numbers), and the indexes need only a few fields.
CREATE TABLE docs (
    shard text NOT NULL,
    tbl   text NOT NULL,
    id    text NOT NULL,
    doc   json NOT NULL,
    PRIMARY KEY (shard, tbl, id)
) PARTITION BY LIST (shard);
CREATE TABLE docs_main PARTITION OF docs FOR VALUES IN ('main');
CREATE TABLE docs_other PARTITION OF docs DEFAULT;
-- The lookups the handlers and jobs make (bot.store_build.INDEXED, and a message by its MsgId).
CREATE INDEX docs_by_userid ON docs (tbl, (doc->>'userid'));
CREATE INDEX docs_by_grid ON docs (tbl, (doc->>'grid'));
CREATE INDEX docs_by_date ON docs (tbl, (doc->>'date'));
CREATE INDEX docs_by_status ON docs (tbl, (doc->>'status'));
CREATE INDEX docs_by_msgid ON docs ((doc->>'msgid'));

-- Which tables each shard holds: read at start instead of scanning the documents.
CREATE TABLE shard_tables (
    shard text NOT NULL,
    tbl   text NOT NULL,
    PRIMARY KEY (shard, tbl)
);

-- Raw messages and their done marks, keyed by the message key: a resend is inserted with
-- ON CONFLICT DO NOTHING, committed before the 200.
CREATE TABLE messages (
    tbl   text NOT NULL,
    id    text NOT NULL,
    shard text NOT NULL,
    doc   json NOT NULL,
    received timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tbl, id)
);
CREATE INDEX messages_by_shard ON messages (tbl, shard);

-- Every committed change, in order: another process follows it (LISTEN gridbot_changes to wake,
-- seq > its last to read) and reads the documents it names.
CREATE TABLE changes (
    seq bigserial PRIMARY KEY,
    at  timestamptz NOT NULL DEFAULT now(),
    ops json NOT NULL
);

-- `gridbot migrate --to postgres`: the (shard, table) pairs copied and verified, so a second run
-- after an interruption goes on where the first stopped.
CREATE TABLE migrated (
    shard text NOT NULL,
    tbl   text NOT NULL,
    rows  bigint NOT NULL,
    at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shard, tbl)
);
