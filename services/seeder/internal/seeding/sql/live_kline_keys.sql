-- The keys ("SYMBOL/WINDOW") of the queued or running fetch_klines jobs.
SELECT dedup_key
  FROM ingest.jobs
 WHERE kind = 'fetch_klines' AND status IN ('queued', 'running')
