-- Lifts source $2's pauses of kinds $1 (every kind when $1 is NULL) and returns the kinds lifted.
-- Engines are told those kinds have due work; a kind still paused by another source stays paused
-- (their claims skip it), the notification only wakes them.
WITH lifted AS (
    DELETE FROM ops.job_pause
     WHERE source = $2 AND ($1::text[] IS NULL OR kind = ANY ($1::text[]))
    RETURNING kind
), notified AS (
    SELECT pg_notify('ingest_jobs', string_agg(kind, ',')) FROM lifted HAVING count(*) > 0
)
SELECT kind, (SELECT count(*) FROM notified) FROM lifted ORDER BY kind
