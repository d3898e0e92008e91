-- Releases the locks lock_sessions.sql took. $1 session ids.
SELECT count(pg_advisory_unlock(hashtext('cin_aux.rt_move'), (s.session_id % 2147483647)::integer))
  FROM unnest($1::bigint[]) AS s (session_id)
