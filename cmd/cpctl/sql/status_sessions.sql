-- Sessions not stopped cleanly, seen (or started) since $1: running replicas, and lost ones
-- (no heartbeat for three intervals) that crashed recently enough to matter.
SELECT id, service, version, host, pid, env, started_at, last_seen_at, heartbeat_every
  FROM ops.session_log
 WHERE stopped_at IS NULL AND COALESCE(last_seen_at, started_at) >= $1
 ORDER BY service, started_at DESC
