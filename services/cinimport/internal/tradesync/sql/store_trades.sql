-- Stores fetched trades of one symbol, skipping those already stored (the natural key), and, when
-- $16 (trades from myTrades' fromId walk), moves the scope's fromId cursor to the highest id
-- fetched, never back. A trade from the user data stream ($16 false) leaves the cursor alone: the
-- stream may have missed earlier ids, which the next reconciliation must still fetch. Returns the
-- trade times of the trades that were new, so the importer knows where new trades start.
-- $1 scope, $2 symbol, $3.. per trade: id, order id, order list id, price, qty, quote qty,
-- commission, commission asset, time, is buyer, is maker, is best match, raw JSON.
WITH fetched AS (
    SELECT *
      FROM unnest($3::bigint[], $4::bigint[], $5::bigint[], $6::numeric[], $7::numeric[], $8::numeric[],
                  $9::numeric[], $10::text[], $11::timestamptz[], $12::boolean[], $13::boolean[],
                  $14::boolean[], $15::jsonb[])
           AS f (trade_id, order_id, order_list_id, price, qty, quote_qty, commission, commission_asset,
                 trade_time, is_buyer, is_maker, is_best_match, raw)
), stored AS (
    INSERT INTO market.account_trades (symbol, trade_id, order_id, order_list_id, price, qty, quote_qty,
                                       commission, commission_asset, trade_time, is_buyer, is_maker,
                                       is_best_match, account_scope, raw)
    SELECT $2::text, trade_id, order_id, order_list_id, price, qty, quote_qty, commission, commission_asset,
           trade_time, is_buyer, is_maker, is_best_match, $1::text, raw
      FROM fetched
     ORDER BY trade_id
        ON CONFLICT (symbol, trade_id) DO NOTHING
    RETURNING trade_time
), cursor AS (
    INSERT INTO market.trade_cursors AS c (account_scope, symbol, last_trade_id)
    SELECT $1::text, $2::text, max(trade_id) FROM fetched WHERE $16::boolean HAVING count(*) > 0
        ON CONFLICT (account_scope, symbol) DO UPDATE
       SET last_trade_id = greatest(c.last_trade_id, excluded.last_trade_id), updated_at = now()
)
SELECT trade_time FROM stored
