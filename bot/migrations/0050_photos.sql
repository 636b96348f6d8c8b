-- Check-in photos' fingerprints, shared by every bot process (bot.photos.pg_fingerprints): the
-- duplicate-photo search covers the photos every worker took in. A row is inserted while holding
-- one advisory lock (the search covers everyone's photos, so its scope is the whole deployment),
-- in the transaction that searched: rows therefore commit in `seq` order, and a process catches
-- up with the others by reading seq > the last it holds.
CREATE TABLE photo_prints (
    seq     bigserial PRIMARY KEY,
    msgid   text NOT NULL UNIQUE,  -- the message's key: a replay finds its verdict, not a duplicate
    checkin text NOT NULL,
    userid  text NOT NULL,
    name    text NOT NULL,
    at      double precision NOT NULL,  -- the message's CreateTime, epoch seconds
    hashes  bigint[] NOT NULL,  -- the whole picture's pHash, then the crops' (signed 64 bits)
    -- The verdict given when it was checked: the earlier photo it matched, if any.
    dup_of       text,
    dup_distance int,
    dup_at       double precision,
    dup_name     text
);
-- The window of the search (the last duplicate_days) is read by time at start.
CREATE INDEX photo_prints_at ON photo_prints (at);

-- Fingerprints of check-ins written as documents (an existing database, or one filled by
-- `gridbot migrate --to postgres`): `one_shard` NULL for every week.
CREATE FUNCTION photo_prints_from_docs(one_shard text) RETURNS bigint LANGUAGE sql AS $$
    WITH added AS (
        INSERT INTO photo_prints (msgid, checkin, userid, name, at, hashes, dup_of, dup_distance)
        SELECT coalesce(j->>'msgid', 'checkin:' || id), id, coalesce(j->>'userid', ''), coalesce(j->>'name', ''),
               coalesce((j->>'time')::double precision, 0),
               ARRAY(SELECT ('x' || lpad(h, 16, '0'))::bit(64)::bigint
                     FROM jsonb_array_elements_text(jsonb_build_array(j->'phash') ||
                         CASE WHEN jsonb_typeof(j->'phash_crops') = 'array' THEN j->'phash_crops'
                              ELSE '[]'::jsonb END) WITH ORDINALITY AS hs(h, n)
                     WHERE h ~ '^[0-9a-f]{1,16}$'
                     ORDER BY n),
               j->>'duplicate_of', (j->>'duplicate_distance')::int
        -- json is parsed again by every ->: once into jsonb instead (seven times faster).
        FROM (SELECT d.id, d.doc::jsonb AS j FROM docs d
              WHERE d.tbl = 'checkins' AND (one_shard IS NULL OR d.shard = one_shard)) AS c
        WHERE j->>'phash' ~ '^[0-9a-f]{1,16}$'
        ORDER BY (j->>'time')::double precision
        ON CONFLICT (msgid) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM added
$$;

SELECT photo_prints_from_docs(NULL);
