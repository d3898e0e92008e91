-- Notes, for session $1 (scope $2, start $3), the markets of $4 (quote asset unknown) that have
-- trades of the session's scope from its start on: the import passed them over, and retries them
-- once they are known. Each market's trades are probed through the primary key (symbol first).
-- Returns the markets noted now (not those noted before).
INSERT INTO cin_aux.session_pending_market (session_id, symbol)
SELECT $1::bigint, u.symbol
  FROM unnest($4::text[]) AS u (symbol)
 WHERE EXISTS (SELECT 1 FROM market.account_trades t
                WHERE t.symbol = u.symbol AND t.account_scope = $2::text AND t.trade_time >= $3::timestamptz)
    ON CONFLICT (session_id, symbol) DO NOTHING
RETURNING symbol
