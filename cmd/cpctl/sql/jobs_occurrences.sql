-- cpctl jobs show: the newest $2 failed occurrences of recurring job $1.
SELECT id, attempts, scheduled_for, finished_at, coalesce(error, '')
  FROM ingest.jobs
 WHERE occurrence_of = $1
 ORDER BY id DESC
 LIMIT $2
