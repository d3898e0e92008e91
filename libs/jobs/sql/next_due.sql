-- Seconds until the next queued job of the kinds $1 that is not yet due (no row: none). Jobs due
-- already are not counted: a claim just took every one that was not locked by another worker.
SELECT extract(epoch FROM scheduled_for - now())::float8
  FROM ingest.jobs
 WHERE status = 'queued' AND scheduled_for > now() AND kind = ANY ($1::text[])
 ORDER BY scheduled_for
 LIMIT 1
