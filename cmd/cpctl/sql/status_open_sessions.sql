-- OPEN cin-aux sessions and their last import (the cursor cinimport advances).
SELECT s.session_id, s.account_scope, COALESCE(s.label, ''), s.started_at, c.updated_at, COALESCE(c.moves_imported, 0)
  FROM cin_aux.rt_session s
  LEFT JOIN cin_aux.session_import_cursor c USING (session_id)
 WHERE s.status = 'OPEN'
 ORDER BY s.session_id
