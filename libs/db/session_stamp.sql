-- StampSession: one row per process start.
INSERT INTO ops.session_log (service, version, host, pid, env, extra)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
