-- The follower of the changes feed (bot.pg_feed) needs to know which transaction wrote each
-- change: `seq` is handed out before COMMIT, so a lower seq may commit after a higher one, and a
-- missing seq is waited for only while a transaction that could still hold it is running.
ALTER TABLE changes ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
-- Pruning deletes the changes older than a day.
CREATE INDEX changes_at ON changes (at);
