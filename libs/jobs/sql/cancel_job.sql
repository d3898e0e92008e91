-- Cancels job $1 if it is queued or running, and returns its status before. A running job's
-- engine learns of it on the ingest_jobs_cancel channel (payload: the id; delivered at commit) and
-- cancels its handler's context; engines also look for cancelled jobs they hold at every lease
-- renewal, in case the notification is lost. The handler's late outcome is dropped, as for Cancel.
WITH target AS (
    SELECT id, status FROM ingest.jobs WHERE id = $1 FOR UPDATE
), cancelled AS (
    UPDATE ingest.jobs AS j
       SET status           = 'cancelled',
           finished_at      = now(),
           locked_by        = NULL,
           lease_expires_at = NULL,
           updated_at       = now()
      FROM target t
     WHERE j.id = t.id AND t.status IN ('queued', 'running')
    RETURNING j.id
), notified AS (
    SELECT pg_notify('ingest_jobs_cancel', t.id::text) FROM target t WHERE t.status = 'running'
)
SELECT t.status, (SELECT count(*) FROM cancelled), (SELECT count(*) FROM notified)
  FROM target t
