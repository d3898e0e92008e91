-- Records the start of one-shot command $1 (e.g. 'cinimport once -full') of session $2 (0:
-- unknown) at $3; returns the row's id.
INSERT INTO ops.job_run (kind, name, status, started_at, session_id)
VALUES ('oneshot', $1, 'running', $3, nullif($2::bigint, 0))
RETURNING id
