-- cpctl jobs show: one job, everything about it.
SELECT id, kind, dedup_key, status, attempts, max_attempts, scheduled_for, started_at, finished_at,
       coalesce(error, ''), coalesce(extract(epoch FROM period), 0)::float8, consecutive_failures,
       occurrence_of, updated_at, payload, created_at, locked_by, lease_expires_at, last_failed_at
  FROM ingest.jobs
 WHERE id = $1
