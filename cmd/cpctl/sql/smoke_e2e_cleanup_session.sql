-- cpctl smoke: remove the end-to-end pass's session $1; its moves go with it (rt_session_delete_moves).
-- Returns the moves removed with it.
WITH moves AS (SELECT count(*) AS n FROM cin_aux.rt_move WHERE session_id = $1),
     gone AS (DELETE FROM cin_aux.rt_session WHERE session_id = $1 RETURNING 1)
SELECT (SELECT n FROM moves) + (SELECT count(*) FROM gone)
