-- Serialises imports of the same sessions across processes and replicas: one session-level
-- advisory lock per session, taken in id order in one statement so that two importers cannot
-- deadlock. The first key, hashtext('cin_aux.rt_move'), keeps these locks apart from other users
-- of advisory locks; session ids share the second key modulo 2^31 − 1 (a collision only
-- serialises two imports). Session-level, not transaction-level: the import transaction is
-- REPEATABLE READ and must take its snapshot after the locks are held.
-- $1 session ids, sorted.
SELECT count(pg_advisory_lock(hashtext('cin_aux.rt_move'), (s.session_id % 2147483647)::integer))
  FROM (SELECT session_id FROM unnest($1::bigint[]) AS u (session_id) ORDER BY session_id) s
