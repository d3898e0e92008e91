-- StopSession: a clean stop; the first one counts.
UPDATE ops.session_log
   SET stopped_at = now(), last_seen_at = now()
 WHERE id = $1 AND stopped_at IS NULL
