-- One batch of RetryFailed: the newest $3 failed jobs of kind $1 with ids below $2. Per dedup key
-- the newest one whose key no live job holds goes back to the queue as retry.sql does; the others
-- stay failed (skipped: their work is queued or running already, e.g. a failed occurrence of a
-- recurring job, whose job is queued for its next period). Returns the rows looked at, those
-- retried, and the lowest id looked at (where the next batch starts).
WITH batch AS (
    SELECT id, dedup_key
      FROM ingest.jobs
     WHERE kind = $1 AND status = 'failed' AND id < $2
     ORDER BY id DESC
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), pick AS (
    SELECT DISTINCT ON (b.dedup_key) b.id
      FROM batch b
     WHERE NOT EXISTS (SELECT 1
                         FROM ingest.jobs l
                        WHERE l.kind = $1 AND l.dedup_key = b.dedup_key AND l.status IN ('queued', 'running'))
     ORDER BY b.dedup_key, b.id DESC
), retried AS (
    UPDATE ingest.jobs AS j
       SET status        = 'queued',
           attempts      = 0,
           scheduled_for = now(),
           finished_at   = NULL,
           updated_at    = now()
      FROM pick p
     WHERE j.id = p.id
    RETURNING j.id
), notified AS (
    SELECT pg_notify('ingest_jobs', $1) WHERE EXISTS (SELECT 1 FROM retried)
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM retried), coalesce((SELECT min(id) FROM batch), 0),
       (SELECT count(*) FROM notified)
