-- How many trades come after a session's watermark, counting no further than $6: enough to
-- decide whether an import is large enough to split. Same range as new_trades_span.sql.
-- $1 scope, $2 session start, $3..$5 watermark (trade_time, symbol, trade_id) or NULLs, $6 cap.
SELECT count(*)
  FROM (SELECT 1
          FROM market.account_trades t
         WHERE t.account_scope = $1::text
           AND t.trade_time >= coalesce($3::timestamptz, $2::timestamptz)
           AND ($3::timestamptz IS NULL OR (t.trade_time, t.symbol, t.trade_id) > ($3::timestamptz, $4::text, $5::bigint))
         LIMIT $6::integer) capped
