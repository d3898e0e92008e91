-- Moves a session's watermark forward to ($2, $3, $4), never back, adds $5 to its count of
-- imported moves, and records $6 as the snapshot its imports have read (NULL: unchanged; imports
-- of a session are serialised, so each one's snapshot is later than the last one's). $1 session id.
INSERT INTO cin_aux.session_import_cursor AS c (session_id, last_trade_time, last_symbol, last_trade_id, moves_imported, seen_snapshot)
VALUES ($1::bigint, $2::timestamptz, $3::text, $4::bigint, $5::bigint, $6::pg_snapshot)
    ON CONFLICT (session_id) DO UPDATE
   SET last_trade_time = CASE WHEN (excluded.last_trade_time, excluded.last_symbol, excluded.last_trade_id)
                                   > (c.last_trade_time, c.last_symbol, c.last_trade_id)
                              THEN excluded.last_trade_time ELSE c.last_trade_time END,
       last_symbol     = CASE WHEN (excluded.last_trade_time, excluded.last_symbol, excluded.last_trade_id)
                                   > (c.last_trade_time, c.last_symbol, c.last_trade_id)
                              THEN excluded.last_symbol ELSE c.last_symbol END,
       last_trade_id   = CASE WHEN (excluded.last_trade_time, excluded.last_symbol, excluded.last_trade_id)
                                   > (c.last_trade_time, c.last_symbol, c.last_trade_id)
                              THEN excluded.last_trade_id ELSE c.last_trade_id END,
       moves_imported  = c.moves_imported + excluded.moves_imported,
       seen_snapshot   = coalesce(excluded.seen_snapshot, c.seen_snapshot),
       updated_at      = now()
