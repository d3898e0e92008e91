-- cpctl smoke: open the smoke session under scope $1, started at $2.
INSERT INTO cin_aux.rt_session (account_scope, label, started_at) VALUES ($1, 'cpctl smoke', $2) RETURNING session_id
