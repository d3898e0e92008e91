-- The most recent failed jobs (and failed occurrences of periodic ones), newest first.
SELECT id, kind, payload::text, attempts, COALESCE(error, ''), COALESCE(finished_at, updated_at)
  FROM ingest.jobs
 WHERE status = 'failed'
 ORDER BY COALESCE(finished_at, updated_at) DESC, id DESC
 LIMIT $1
