-- The symbols that have queued or running fetch_klines jobs (keys "SYMBOL/WINDOW").
SELECT DISTINCT split_part(dedup_key, '/', 1)
  FROM ingest.jobs
 WHERE kind = 'fetch_klines' AND status IN ('queued', 'running')
