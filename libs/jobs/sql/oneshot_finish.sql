-- Records the end of one-shot run $1 at $2: $3 succeeded or failed, with error $4 ('' for none).
UPDATE ops.job_run
   SET status = $3, finished_at = $2, error = nullif($4, '')
 WHERE id = $1 AND status = 'running'
