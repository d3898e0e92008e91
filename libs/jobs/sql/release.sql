-- Hands every job still running under worker $1 back to the queue (shutdown): due now, and the
-- interrupted claim is not counted as an attempt. A row locked right now is being cancelled.
UPDATE ingest.jobs
   SET status           = 'queued',
       attempts         = greatest(attempts - 1, 0),
       scheduled_for    = now(),
       locked_by        = NULL,
       lease_expires_at = NULL,
       updated_at       = now()
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE status = 'running' AND locked_by = $1
                 FOR UPDATE SKIP LOCKED)
RETURNING kind
