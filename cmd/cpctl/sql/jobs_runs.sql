-- cpctl jobs show: the newest $2 runs of job $1 from ops.job_run.
SELECT id, coalesce(attempt, 0), status, started_at, finished_at,
       coalesce(extract(epoch FROM duration), 0)::float8, coalesce(error, ''), coalesce(session_id, 0),
       coalesce(worker, '')
  FROM ops.job_run
 WHERE job_id = $1
 ORDER BY id DESC
 LIMIT $2
