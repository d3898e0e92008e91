-- The OPEN sessions, optionally only those of some account scopes. $1 scopes (NULL: every scope).
SELECT session_id, account_scope
  FROM cin_aux.rt_session
 WHERE status = 'OPEN'
   AND ($1::text[] IS NULL OR account_scope = ANY ($1::text[]))
 ORDER BY session_id
