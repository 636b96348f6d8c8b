-- What `gridbot stats` shows for a week's reports and check-ins (bot.week_counts: count_reports,
-- count_checkins), kept in a table by the same transaction that writes the documents, so stats
-- reads a few rows instead of scanning a week's documents (bot.pg_counts).
--
-- Rows are only ever added: each statement that writes documents adds one row per (week, table,
-- grid) it changed, with the difference it made, and a week's counts are the sum of its rows.
-- A row that every writer updated in place would be locked by each until its COMMIT, so writers
-- of a grid would wait for each other (and two writers moving documents between weeks could
-- deadlock); added rows lock nothing. gridbot_fold_counts (called hourly, bot.store_pg) sums them
-- into one row per (week, table, grid) again.
CREATE TABLE week_counts (
    shard            text NOT NULL,
    tbl              text NOT NULL,
    grid             text NOT NULL,
    reports          bigint NOT NULL DEFAULT 0,
    reports_counted  bigint NOT NULL DEFAULT 0,
    items            bigint NOT NULL DEFAULT 0,
    checkins         bigint NOT NULL DEFAULT 0,
    duplicates       bigint NOT NULL DEFAULT 0,
    flagged_checkins bigint NOT NULL DEFAULT 0
);
CREATE INDEX week_counts_by_week ON week_counts (shard, tbl);

-- Python's truth of a JSON value (`if doc.get(field)`): null, false, 0, "", [] and {} are false,
-- and a missing field too. The string "0" is true, as in Python.
CREATE FUNCTION gridbot_truthy(v jsonb) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(v)
        WHEN 'boolean' THEN v = 'true'::jsonb
        WHEN 'number' THEN v::numeric <> 0
        WHEN 'string' THEN v <> '""'::jsonb
        WHEN 'array' THEN v <> '[]'::jsonb
        WHEN 'object' THEN v <> '{}'::jsonb
        ELSE false
    END
$$;

-- One document's share of its week's counts: count_reports and count_checkins, spelled in SQL.
-- jsonb, parsed once: each -> on a json value parses the whole document text again.
CREATE FUNCTION gridbot_doc_counts(tbl text, doc jsonb)
RETURNS TABLE (reports int, reports_counted int, items int, checkins int, duplicates int, flagged_checkins int)
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN tbl = 'reports' AND active THEN 1 ELSE 0 END,
           CASE WHEN tbl = 'reports' AND active AND NOT gridbot_truthy(doc->'unconfirmed') THEN 1 ELSE 0 END,
           CASE WHEN tbl = 'reports' AND active AND jsonb_typeof(doc->'items') = 'array'
                THEN jsonb_array_length(doc->'items') ELSE 0 END,
           CASE WHEN tbl = 'checkins' AND gridbot_truthy(doc->'counted') THEN 1 ELSE 0 END,
           CASE WHEN tbl = 'checkins' AND jsonb_typeof(doc->'flags') = 'array'
                     AND doc->'flags' @> '["duplicate"]' THEN 1 ELSE 0 END,
           CASE WHEN tbl = 'checkins' AND NOT gridbot_truthy(doc->'counted') THEN 1 ELSE 0 END
    FROM (SELECT coalesce(doc->>'status' = 'active', false) AS active) AS r
$$;

-- Adds documents' shares to week_counts, each with its sign: +1 for a version written, -1 for a
-- version replaced or deleted. A statement whose writes change no count adds nothing. Static SQL
-- in PL/pgSQL: planned once per connection, not at every write.
CREATE FUNCTION gridbot_add_counts(shards text[], tbls text[], docs jsonb[], signs int[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO week_counts (shard, tbl, grid, reports, reports_counted, items, checkins, duplicates, flagged_checkins)
    SELECT r.shard, r.tbl, coalesce(r.doc->>'grid', ''),
           sum(r.sign * c.reports), sum(r.sign * c.reports_counted), sum(r.sign * c.items),
           sum(r.sign * c.checkins), sum(r.sign * c.duplicates), sum(r.sign * c.flagged_checkins)
    FROM unnest(shards, tbls, docs, signs) AS r(shard, tbl, doc, sign), gridbot_doc_counts(r.tbl, r.doc) AS c
    GROUP BY 1, 2, 3
    HAVING sum(r.sign * c.reports) <> 0 OR sum(r.sign * c.reports_counted) <> 0
        OR sum(r.sign * c.items) <> 0 OR sum(r.sign * c.checkins) <> 0
        OR sum(r.sign * c.duplicates) <> 0 OR sum(r.sign * c.flagged_checkins) <> 0;
END
$$;

-- The statement triggers below, with their transition tables: a replaced document (INSERT ... ON
-- CONFLICT DO UPDATE fires the UPDATE trigger with the old and the new version) or one moved to
-- another week (a row inserted in the new week's partition, the old week's row deleted) moves its
-- counts exactly; an UPDATE's old version is the one it replaced, so two processes replacing one
-- document both count right. Only the reports and check-ins have counts.
CREATE FUNCTION gridbot_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM gridbot_add_counts(array_agg(shard), array_agg(tbl), array_agg(doc::jsonb), array_agg(1))
        FROM new_rows WHERE tbl IN ('reports', 'checkins') HAVING count(*) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM gridbot_add_counts(array_agg(shard), array_agg(tbl), array_agg(doc::jsonb), array_agg(-1))
        FROM old_rows WHERE tbl IN ('reports', 'checkins') HAVING count(*) > 0;
    ELSE
        PERFORM gridbot_add_counts(array_agg(shard), array_agg(tbl), array_agg(doc::jsonb), array_agg(sign))
        FROM (SELECT shard, tbl, doc, 1 AS sign FROM new_rows
              UNION ALL SELECT shard, tbl, doc, -1 FROM old_rows) AS r
        WHERE tbl IN ('reports', 'checkins') HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;

-- The added rows summed into one per (week, table, grid). Rows added meanwhile by transactions
-- this statement does not see are left for the next fold; two folds at once do not double a
-- row, as the second's DELETE skips the rows the first deleted.
CREATE FUNCTION gridbot_fold_counts() RETURNS void LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM week_counts RETURNING *)
    INSERT INTO week_counts (shard, tbl, grid, reports, reports_counted, items, checkins, duplicates, flagged_checkins)
    SELECT shard, tbl, grid, sum(reports), sum(reports_counted), sum(items),
           sum(checkins), sum(duplicates), sum(flagged_checkins)
    FROM gone GROUP BY 1, 2, 3
    HAVING sum(reports) <> 0 OR sum(reports_counted) <> 0 OR sum(items) <> 0
        OR sum(checkins) <> 0 OR sum(duplicates) <> 0 OR sum(flagged_checkins) <> 0
$$;

-- Statement triggers, not row triggers: one aggregate per statement, so a COPY of 20,000 rows
-- (gridbot migrate) adds its counts in one go. PostgreSQL allows a transition table only on a
-- trigger with a single event, hence three.
CREATE TRIGGER docs_count_insert AFTER INSERT ON docs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gridbot_count_rows();
CREATE TRIGGER docs_count_update AFTER UPDATE ON docs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gridbot_count_rows();
CREATE TRIGGER docs_count_delete AFTER DELETE ON docs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION gridbot_count_rows();

-- A database written before this file: its counts, from the documents there now.
INSERT INTO week_counts (shard, tbl, grid, reports, reports_counted, items, checkins, duplicates, flagged_checkins)
SELECT d.shard, d.tbl, coalesce(d.doc->>'grid', ''),
       sum(c.reports), sum(c.reports_counted), sum(c.items), sum(c.checkins), sum(c.duplicates), sum(c.flagged_checkins)
FROM (SELECT shard, tbl, doc::jsonb AS doc FROM docs WHERE tbl IN ('reports', 'checkins')) AS d,
     gridbot_doc_counts(d.tbl, d.doc) AS c
GROUP BY 1, 2, 3;

-- PgStore.put_many in one round trip: the whole write (documents upserted, documents moved to
-- another week deleted from the old one, raw messages inserted unless already there, new
-- (shard, table) pairs, the `changes` row and its NOTIFY) as one statement, its own transaction.
-- The xid is taken first, before the changes row's seq: the follower's gap rule (bot.pg_feed).
-- Each array group is the columns of one kind of row; an empty group does nothing (and fires no
-- trigger). The documents must not name one (shard, tbl, id) twice (ON CONFLICT DO UPDATE cannot
-- change a row twice in one statement): put_many keeps the last.
CREATE FUNCTION gridbot_put(d_shard text[], d_tbl text[], d_id text[], d_doc text[],
                            x_shard text[], x_tbl text[], x_id text[],
                            m_tbl text[], m_id text[], m_shard text[], m_doc text[],
                            p_shard text[], p_tbl text[], feed text, channel text,
                            OUT out_seq bigint, OUT out_xid text)
LANGUAGE plpgsql AS $$
DECLARE
    x xid8 := pg_current_xact_id();
BEGIN
    IF cardinality(d_id) > 0 THEN
        INSERT INTO docs (shard, tbl, id, doc)
        SELECT u.s, u.t, u.i, u.j::json FROM unnest(d_shard, d_tbl, d_id, d_doc) AS u(s, t, i, j)
        ON CONFLICT (shard, tbl, id) DO UPDATE SET doc = EXCLUDED.doc;
    END IF;
    IF cardinality(x_id) > 0 THEN
        DELETE FROM docs AS d USING unnest(x_shard, x_tbl, x_id) AS u(s, t, i)
        WHERE d.shard = u.s AND d.tbl = u.t AND d.id = u.i;
    END IF;
    IF cardinality(m_id) > 0 THEN
        INSERT INTO messages (tbl, id, shard, doc)
        SELECT u.t, u.i, u.s, u.j::json FROM unnest(m_tbl, m_id, m_shard, m_doc) AS u(t, i, s, j)
        ON CONFLICT (tbl, id) DO NOTHING;
    END IF;
    IF cardinality(p_shard) > 0 THEN
        INSERT INTO shard_tables (shard, tbl) SELECT * FROM unnest(p_shard, p_tbl) ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO changes (ops, xid) VALUES (feed::json, x) RETURNING changes.seq INTO out_seq;
    PERFORM pg_notify(channel, out_seq::text);
    out_xid := x::text;
END
$$;

-- The queries the bot makes of PostgreSQL, and what serves each (EXPLAIN ANALYZE on the big
-- street migrated: 240 grids, 1.27 million documents, 15 weeks). The handlers and jobs never
-- ask the server for a document by a field: they read this process's memory (the field indexes
-- and the DayIndex of bot.store_reads), which PostgreSQL fills and keeps current through these.
--   a week's table (store_pg.fetch_table: load, older weeks, the feed's refetch)
--       docs WHERE shard AND tbl: the week's partition alone (pruned), read whole
--   which tables each week holds (store_pg.load)            shard_tables, read whole (tens of rows)
--   a write (gridbot_put above)           docs, messages, shard_tables: their primary keys
--       (week_counts is only added to: no lookup)
--   a week's counts (pg_counts, gridbot stats)   week_counts WHERE shard AND tbl: week_counts_by_week
--   a week's raw messages in order (pg_cold.read: the inbox's replay), their ids, the messages
--   not marked done (pg_cold.ids, pg_cold.open)
--       messages_by_shard, then a sort (read) or a hash anti join on the week's done marks (open).
--       An index in (tbl, shard, received, id) order would spare read's sort (which spills 19 MB
--       to disk for the big street's week of 61,000 messages, 0.2 s) but made the messages table
--       a third bigger (237 to 319 MB on the big street) and costs every message's insert: not
--       worth it for a read made once at start.
--   one message, the week of a MsgId (pg_cold.get, pg_cold.shard_of)      messages' primary key
--   the feed (pg_feed): changes after a seq, its end          changes' primary key (seq)
--       the documents a change names               docs JOIN unnest(...): each partition's key
--       pruning                                               changes_at
--   a job's claim, heartbeat, finish (pg_jobs)                job_fires' primary key
--   the takeover sweep                                        job_fires_open (unfinished only)
--   a message recorded as a report (the inbox's recovery: doc->>'msgid')  docs_by_msgid
-- The four other expression indexes of 0001 (userid, grid, date, status) serve no query: every
-- write paid for them (each parses the document's text again), and so did the migration's COPY.
DROP INDEX docs_by_userid, docs_by_grid, docs_by_date, docs_by_status;
