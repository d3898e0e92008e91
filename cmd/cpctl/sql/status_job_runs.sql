-- The most recent job runs and one-shot runs (ops.job_run), newest first.
SELECT id, kind, name, status, started_at, finished_at, COALESCE(error, '')
  FROM ops.job_run
 ORDER BY started_at DESC, id DESC
 LIMIT $1
