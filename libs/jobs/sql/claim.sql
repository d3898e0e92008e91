-- Claims up to $2 due jobs of the kinds $1 for worker $3, leased for $4 µs, in schedule order.
-- SKIP LOCKED lets any number of workers claim at once without waiting on each other; the claim
-- and the status change are one statement, so a claimed job is never seen queued by anyone else.
-- attempts counts claims, so a job that keeps killing its worker still runs out of attempts.
-- Paused kinds (ops.job_pause) are skipped: the pause list is read once per claim (an init plan),
-- so the ordered scan of jobs_due stays the plan.
WITH due AS (
    SELECT id
      FROM ingest.jobs
     WHERE status = 'queued' AND scheduled_for <= now() AND kind = ANY ($1::text[])
       AND kind <> ALL (ARRAY(SELECT kind FROM ops.job_pause))
     ORDER BY scheduled_for, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
)
UPDATE ingest.jobs AS j
   SET status           = 'running',
       attempts         = j.attempts + 1,
       started_at       = now(),
       locked_by        = $3,
       lease_expires_at = now() + $4 * interval '1 microsecond',
       updated_at       = now()
  FROM due
 WHERE j.id = due.id
RETURNING j.id, j.kind, j.dedup_key, j.payload, j.attempts, j.max_attempts, j.scheduled_for,
          (extract(epoch FROM j.period) * 1000000)::bigint, j.created_at
