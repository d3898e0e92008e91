-- Job backlog per kind and status: how many, the oldest due queued job ($1 = now), and the most
-- failed occurrences in a row of a job of the kind.
SELECT kind, status, count(*),
       min(scheduled_for) FILTER (WHERE status = 'queued' AND scheduled_for <= $1) AS oldest_due,
       max(consecutive_failures) AS consecutive_failures
  FROM ingest.jobs
 GROUP BY kind, status
 ORDER BY kind, status
