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
        SELECT coalesce(d.doc->>'msgid', 'checkin:' || d.id), d.id, coalesce(d.doc->>'userid', ''),
               coalesce(d.doc->>'name', ''), coalesce((d.doc->>'time')::double precision, 0),
               ARRAY(SELECT ('x' || lpad(h, 16, '0'))::bit(64)::bigint
                     FROM (SELECT d.doc->>'phash' AS h, 0 AS n
                           UNION ALL
                           SELECT c.h, c.n FROM json_array_elements_text(
                               CASE WHEN json_typeof(d.doc->'phash_crops') = 'array' THEN d.doc->'phash_crops'
                                    ELSE '[]'::json END) WITH ORDINALITY AS c(h, n)) AS hs
                     WHERE h ~ '^[0-9a-f]{1,16}$'
                     ORDER BY n),
               d.doc->>'duplicate_of', (d.doc->>'duplicate_distance')::int
        FROM docs d
        WHERE d.tbl = 'checkins' AND (one_shard IS NULL OR d.shard = one_shard)
          AND d.doc->>'phash' ~ '^[0-9a-f]{1,16}$'
        ORDER BY (d.doc->>'time')::double precision
        ON CONFLICT (msgid) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM added
$$;

SELECT photo_prints_from_docs(NULL);
