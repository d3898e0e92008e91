-- Forgets the pending markets $2 of session $1: their trades at or behind the watermark have just
-- been imported (the ones after it are the new part's).
DELETE FROM cin_aux.session_pending_market WHERE session_id = $1::bigint AND symbol = ANY ($2::text[])
