-- TouchSession: the process's heartbeat; a stopped session is not revived.
UPDATE ops.session_log
   SET last_seen_at = now(), heartbeat_every = $2
 WHERE id = $1 AND stopped_at IS NULL
