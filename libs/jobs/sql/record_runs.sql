-- Records a batch of job runs in ops.job_run (one per handler run). $9 session (0: unknown),
-- $10 the engine run's worker id.
INSERT INTO ops.job_run (job_id, kind, name, attempt, status, started_at, finished_at, error, session_id, worker)
SELECT u.job_id, u.kind, u.name, u.attempt, u.status, u.started_at, u.finished_at, nullif(u.error, ''),
       nullif($9::bigint, 0), $10
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::timestamptz[],
              $7::timestamptz[], $8::text[])
       AS u (job_id, kind, name, attempt, status, started_at, finished_at, error)
