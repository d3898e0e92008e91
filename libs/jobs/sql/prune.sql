-- Deletes finished jobs (succeeded, failed, cancelled) that finished before $1.
DELETE FROM ingest.jobs
 WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < $1
