-- The live (queued or running) job holding a key, if any.
SELECT id FROM ingest.jobs
 WHERE kind = $1 AND dedup_key = $2 AND status IN ('queued', 'running')
