-- Inserts jobs; one whose (kind, dedup_key) is already queued or running is skipped (the live-key
-- index jobs_live_key). The caller sorts rows by (kind, dedup_key), so concurrent batches take
-- their key locks in the same order and cannot deadlock each other.
-- $1 kinds, $2 keys, $3 payloads (JSON text), $4 scheduled_for (NULL: now), $5 period in µs
-- (0: one-shot), $6 max attempts.
INSERT INTO ingest.jobs (kind, dedup_key, payload, scheduled_for, period, max_attempts)
SELECT u.kind, u.dedup_key, u.payload::jsonb, coalesce(u.scheduled_for, now()),
       CASE WHEN u.period_us > 0 THEN u.period_us * interval '1 microsecond' END,
       u.max_attempts
  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::integer[])
       AS u (kind, dedup_key, payload, scheduled_for, period_us, max_attempts)
    ON CONFLICT (kind, dedup_key) WHERE status IN ('queued', 'running') DO NOTHING
RETURNING id, kind, dedup_key
