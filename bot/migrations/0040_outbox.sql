-- The shared outbox (bot.pg_outbox): every message any worker sends is a row here, committed
-- before it may go out; the workers drain it lane by lane (a lane is one recipient, held by one
-- worker at a time: bot.pg_drain).
CREATE TABLE outbox (
    seq     bigserial PRIMARY KEY,           -- insertion order: a lane's messages go out in it
    id      text NOT NULL UNIQUE,            -- the message's id (Outgoing.id, in its Idempotency-Key)
    lane    text NOT NULL,                   -- channel:recipient
    key     text UNIQUE,                     -- a job's push: (schedule, fire time, recipient, part)
    reply   boolean NOT NULL,                -- answers an inbound message: goes before pushes
    cause   text,                            -- the inbound message it answers
    created double precision NOT NULL,       -- wall-clock seconds (Outgoing.created)
    until   double precision NOT NULL,       -- not sent after this
    msg     json NOT NULL,                   -- what to send (bot.outbox's record of it)
    blob    bytea,                           -- an image's or file's bytes, cleared once it ended
    state   text NOT NULL DEFAULT 'queued',  -- queued, then sent, failed, expired, replaced or uncertain
    tried   boolean NOT NULL DEFAULT false,  -- a call went out and its answer is not known (yet)
    dc      int,                             -- the duplicate check its first attempt carried
    h       text,                            -- what WeCom's duplicate check compares (a digest)
    holder  text,                            -- the worker that ended it
    sent_at double precision,                -- on the pace's clock: the per-person caps' history
    t1      double precision                 -- when it ended (wall-clock seconds)
);
-- What is waiting, per lane in order; the history a lane's new holder reads for the caps.
CREATE INDEX outbox_queued ON outbox (lane, seq) WHERE state = 'queued';
CREATE INDEX outbox_ended ON outbox (lane, t1) WHERE t1 IS NOT NULL;
CREATE INDEX outbox_by_cause ON outbox (cause) WHERE cause IS NOT NULL;

-- Who drains each lane: a lease renewed while held, taken over once it ran out (its worker died).
CREATE TABLE outbox_lanes (
    lane        text PRIMARY KEY,
    holder      text,
    lease_until timestamptz
);

-- The enterprise-wide cap, shared by every worker: two token buckets (a minute's and an hour's)
-- in one row, each send taking a token under the row's lock (outbox_slot below).
CREATE TABLE outbox_pace (
    id            int PRIMARY KEY CHECK (id = 1),
    tokens        double precision NOT NULL DEFAULT 1e9,
    hour_tokens   double precision NOT NULL DEFAULT 1e9,
    filled        double precision NOT NULL DEFAULT 0,
    blocked_until double precision NOT NULL DEFAULT 0,  -- WeCom said "too often": nobody sends
    replies_until double precision NOT NULL DEFAULT 0   -- a reply waits for a token: pushes hold back
);
INSERT INTO outbox_pace (id) VALUES (1);

-- Turns for a batch of sends, in the order given (the caller's priority order): for each 0 when
-- taken (the row marked as tried, with the duplicate check it carries), else the seconds to wait
-- (and every later one waits as long: the order holds); -1 when its lane is no longer the
-- caller's. `p_now` is the callers' shared clock (bot.pg_pace), `share` their slow-down after
-- WeCom refused a call for the rate. One statement for many sends: a worker's sends do not queue
-- one round trip each behind the row's lock.
CREATE FUNCTION outbox_slots(p_seqs bigint[], p_lanes text[], p_holder text, p_replies boolean[], p_dcs int[],
                             p_now double precision, per_minute int, per_hour int, share double precision)
RETURNS double precision[] LANGUAGE plpgsql AS $$
DECLARE
    p outbox_pace;
    burst double precision := greatest(1.0, per_minute / 60.0);
    -- A burst's worth plus the refill over any 60 s stays within per_minute (the same for the hour).
    rate double precision := greatest(per_minute - burst, 1.0) / 60.0 * share;
    hour_burst double precision := per_hour / 2.0;
    hour_rate double precision := per_hour / 2.0 / 3600.0 * share;
    mine text[];
    answer double precision[] := '{}';
    held double precision := 0;  -- once one waits, all after it wait as long
    wait double precision;
BEGIN
    SELECT coalesce(array_agg(lane), '{}') INTO mine FROM outbox_lanes
     WHERE lane = ANY(p_lanes) AND holder = p_holder;
    IF per_minute > 0 THEN
        SELECT * INTO p FROM outbox_pace WHERE id = 1 FOR UPDATE;
        p.tokens := least(burst, p.tokens + greatest(0, p_now - p.filled) * rate);
        p.hour_tokens := least(hour_burst, p.hour_tokens + greatest(0, p_now - p.filled) * hour_rate);
        p.filled := greatest(p.filled, p_now);
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_seqs, 1), 0) LOOP
        IF p_seqs[i] IS NOT NULL AND NOT (p_lanes[i] = ANY(mine)) THEN
            answer := answer || (-1)::double precision;
            CONTINUE;
        END IF;
        wait := held;
        IF wait <= 0 AND per_minute > 0 THEN
            wait := greatest(0, p.blocked_until - p_now);
            IF p.tokens < 1 THEN
                wait := greatest(wait, (1 - p.tokens) / rate);
            END IF;
            IF per_hour > 0 AND p.hour_tokens < 1 THEN
                wait := greatest(wait, (1 - p.hour_tokens) / hour_rate);
            END IF;
            IF NOT p_replies[i] AND p.replies_until > p_now THEN
                wait := greatest(wait, p.replies_until - p_now);
            END IF;
            IF wait <= 0 THEN
                p.tokens := p.tokens - 1;
                p.hour_tokens := p.hour_tokens - (CASE WHEN per_hour > 0 THEN 1 ELSE 0 END);
            ELSIF p_replies[i] THEN
                p.replies_until := greatest(p.replies_until, p_now + wait + 0.2);
            END IF;
        END IF;
        IF wait > 0 THEN
            held := wait;
        ELSIF p_seqs[i] IS NOT NULL THEN
            UPDATE outbox SET tried = true, dc = coalesce(dc, p_dcs[i]) WHERE seq = p_seqs[i];
        END IF;
        answer := answer || wait;
    END LOOP;
    IF per_minute > 0 THEN
        UPDATE outbox_pace SET tokens = p.tokens, hour_tokens = p.hour_tokens, filled = p.filled,
                               replies_until = p.replies_until WHERE id = 1;
    END IF;
    RETURN answer;
END;
$$;
