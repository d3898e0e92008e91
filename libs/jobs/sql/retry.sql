-- Puts failed or cancelled job $1 back in the queue, due now, with a fresh attempt budget (its
-- last error is kept until a run succeeds). The live-key index allows one queued or running job
-- per (kind, dedup_key): when another job holds the key, nothing changes and its id is returned.
-- Returns the job's status before, the live job holding its key (NULL: none), whether it was
-- retried. Engines are notified as for an insert.
WITH target AS (
    SELECT id, kind, dedup_key, status FROM ingest.jobs WHERE id = $1 FOR UPDATE
), live AS (
    SELECT l.id
      FROM ingest.jobs l, target t
     WHERE l.kind = t.kind AND l.dedup_key = t.dedup_key AND l.status IN ('queued', 'running') AND l.id <> t.id
     LIMIT 1
), retried AS (
    UPDATE ingest.jobs AS j
       SET status        = 'queued',
           attempts      = 0,
           scheduled_for = now(),
           finished_at   = NULL,
           updated_at    = now()
      FROM target t
     WHERE j.id = t.id AND t.status IN ('failed', 'cancelled') AND NOT EXISTS (SELECT 1 FROM live)
    RETURNING j.id, j.kind
), notified AS (
    SELECT pg_notify('ingest_jobs', kind) FROM retried
)
SELECT t.status, (SELECT id FROM live), (SELECT count(*) FROM retried) > 0, (SELECT count(*) FROM notified)
  FROM target t
