-- Seconds until the next queued job of the kinds $1 (no row: none), 0 for one already due. Jobs
-- due for over a second are not counted: the claim just before this took every due job that was
-- not locked by another worker. Jobs that fell due in the last second are, because one that fell
-- due between the claim and this statement would otherwise be left to the poll fallback. Paused
-- kinds are not counted: resuming one notifies the engines.
SELECT greatest(extract(epoch FROM scheduled_for - now()), 0)::float8
  FROM ingest.jobs
 WHERE status = 'queued' AND scheduled_for > now() - interval '1 second' AND kind = ANY ($1::text[])
   AND kind <> ALL (ARRAY(SELECT kind FROM ops.job_pause))
 ORDER BY scheduled_for
 LIMIT 1
