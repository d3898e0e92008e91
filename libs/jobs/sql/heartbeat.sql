-- Extends the leases of the jobs $1 that worker $2 still holds to $3 µs from now. SKIP LOCKED: a
-- row locked right now is being completed, cancelled or rescued, and waiting for it could
-- deadlock with that statement.
UPDATE ingest.jobs
   SET lease_expires_at = now() + $3 * interval '1 microsecond'
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE id = ANY ($1::bigint[]) AND status = 'running' AND locked_by = $2
                 FOR UPDATE SKIP LOCKED)
