-- Jobs per kind and status, with the oldest due time of the queued ones (the backlog).
SELECT kind, status, count(*), min(scheduled_for) FILTER (WHERE status = 'queued')
  FROM ingest.jobs
 GROUP BY kind, status
 ORDER BY kind, status
