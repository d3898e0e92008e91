-- Deletes up to $2 finished jobs (succeeded, failed, cancelled) that finished before $1; the
-- caller repeats until fewer are deleted, so a large backlog never holds one long transaction.
-- The conditions are repeated outside the subquery: a row retried (back to queued) while this
-- waits for its lock is re-checked after the wait, and kept; SKIP LOCKED leaves rows being changed
-- to the next round.
DELETE FROM ingest.jobs
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
               LIMIT $2
                 FOR UPDATE SKIP LOCKED)
   AND status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
