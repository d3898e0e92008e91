-- Jobs running now, oldest first: what the engines hold (cancellable from the console).
SELECT id, kind, dedup_key, attempts, COALESCE(started_at, updated_at), COALESCE(locked_by, '')
  FROM ingest.jobs
 WHERE status = 'running'
 ORDER BY started_at NULLS LAST, id
 LIMIT $1
