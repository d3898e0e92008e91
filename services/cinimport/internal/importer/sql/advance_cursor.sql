-- Moves a session's watermark forward to ($2, $3, $4), never back, adds $5 to its count of
-- imported moves, records $6 as the snapshot its imports have read, taken in the cluster of
-- system identifier $8 (imports of a session are serialised, so each one's snapshot is later
-- than the last one's), and $7 as the session start they cover (the start this import ran with:
-- it rescanned from there whatever was not covered before). $1 session id.
INSERT INTO cin_aux.session_import_cursor AS c (session_id, last_trade_time, last_symbol, last_trade_id, moves_imported,
                                                seen_snapshot, covered_from, seen_system_id)
VALUES ($1::bigint, $2::timestamptz, $3::text, $4::bigint, $5::bigint, $6::pg_snapshot, $7::timestamptz, $8::bigint)
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
       seen_snapshot   = excluded.seen_snapshot,
       seen_system_id  = excluded.seen_system_id,
       covered_from    = excluded.covered_from,
       updated_at      = now()
