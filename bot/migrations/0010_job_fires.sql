-- One claim per (schedule, fire time), so that several bot processes on one database run each
-- fire once (bot.pg_jobs). The first process to insert the row runs the job; while it runs it
-- refreshes `heartbeat` (the server's clock, so the workers' own clocks may differ); a row not
-- finished whose heartbeat is older than the limit belongs to a dead worker and may be taken
-- over; a finished row is never run again.
CREATE TABLE job_fires (
    schedule    text NOT NULL,
    fire_at     timestamptz NOT NULL,
    job         text NOT NULL,
    holder      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    heartbeat   timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    ok          boolean,
    takeovers   int NOT NULL DEFAULT 0,
    PRIMARY KEY (schedule, fire_at)
);
-- The takeover sweep looks only at the unfinished claims.
CREATE INDEX job_fires_open ON job_fires (heartbeat) WHERE finished_at IS NULL;
