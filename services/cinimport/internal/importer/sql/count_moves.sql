-- Adds $2 moves to the count of a session that has a watermark. $1 session id.
UPDATE cin_aux.session_import_cursor
   SET moves_imported = moves_imported + $2::bigint, updated_at = now()
 WHERE session_id = $1::bigint
