-- Recovers jobs whose lease ran out (their worker died or lost the database): back to queued
-- now, or failed when the claim that was lost was their last attempt. SKIP LOCKED: a locked row
-- is being completed or cancelled by someone else right now.
UPDATE ingest.jobs
   SET status           = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
       scheduled_for    = now(),
       finished_at      = CASE WHEN attempts >= max_attempts THEN now() ELSE finished_at END,
       error            = 'lease expired on worker ' || locked_by,
       locked_by        = NULL,
       lease_expires_at = NULL,
       updated_at       = now()
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE status = 'running' AND lease_expires_at < now()
                 FOR UPDATE SKIP LOCKED)
RETURNING id, kind, status
