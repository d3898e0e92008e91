-- The live recurring jobs whose last occurrences failed, most failures first (jobs_failing).
SELECT id, kind, dedup_key, consecutive_failures, last_failed_at, coalesce(error, ''), scheduled_for
  FROM ingest.jobs
 WHERE consecutive_failures > 0 AND status IN ('queued', 'running')
 ORDER BY consecutive_failures DESC, kind, dedup_key
