-- Records a batch of job runs in ops.job_run (one per handler run). $9 session (0: unknown),
-- $10 the engine run's worker id. A run whose outcome was dropped (status 'stale') is recorded as
-- cancelled when its job was cancelled meanwhile (by a Cancel whose notification came too late,
-- or the seeder's CancelMatching), else as abandoned (its lease expired and it was rescued).
INSERT INTO ops.job_run (job_id, kind, name, attempt, status, started_at, finished_at, error, session_id, worker)
SELECT u.job_id, u.kind, u.name, u.attempt,
       CASE WHEN u.status <> 'stale' THEN u.status
            WHEN j.status = 'cancelled' THEN 'cancelled'
            ELSE 'abandoned' END,
       u.started_at, u.finished_at, nullif(u.error, ''), nullif($9::bigint, 0), $10
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::timestamptz[],
              $7::timestamptz[], $8::text[])
       AS u (job_id, kind, name, attempt, status, started_at, finished_at, error)
  LEFT JOIN ingest.jobs j ON j.id = u.job_id AND u.status = 'stale'
