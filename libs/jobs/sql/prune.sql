-- Deletes up to $2 finished jobs (succeeded, failed, cancelled) that finished before $1; the
-- caller repeats until fewer are deleted, so a large backlog never holds one long transaction.
DELETE FROM ingest.jobs
 WHERE id IN (SELECT id
                FROM ingest.jobs
               WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
               LIMIT $2)
