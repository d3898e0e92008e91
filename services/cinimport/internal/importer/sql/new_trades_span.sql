-- The span of the trades after a session's watermark, as the new part of import_moves sees them
-- (same parameters, same snapshot): the first and last trade time and the newest trade's key,
-- which becomes the session's watermark. No row when there are none. Every lookup is an index
-- probe on (account_scope, trade_time); nothing is sorted.
-- $1 scope, $2 session start, $3..$5 watermark (trade_time, symbol, trade_id) or NULLs.
WITH bounds AS (
    SELECT min(t.trade_time) AS first_trade, max(t.trade_time) AS last_trade
      FROM market.account_trades t
     WHERE t.account_scope = $1::text
       AND t.trade_time >= coalesce($3::timestamptz, $2::timestamptz)
       AND ($3::timestamptz IS NULL OR (t.trade_time, t.symbol, t.trade_id) > ($3::timestamptz, $4::text, $5::bigint))
)
SELECT b.first_trade, b.last_trade, n.symbol, n.trade_id
  FROM bounds b
 CROSS JOIN LATERAL (
        SELECT t.symbol, t.trade_id
          FROM market.account_trades t
         WHERE t.account_scope = $1::text AND t.trade_time = b.last_trade
         ORDER BY t.symbol DESC, t.trade_id DESC
         LIMIT 1) n
