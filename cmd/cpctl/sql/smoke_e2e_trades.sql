-- cpctl smoke: two account trades (a buy and a sell) of market $1 in the smoke scope $2 at $3. Trade
-- ids are negative, which no exchange trade has, so they never collide with a real trade's key.
INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
                                   commission_asset, trade_time, is_buyer, is_maker, account_scope)
SELECT $1::text, -(floor(random() * 1e15)::bigint + g), -1, 100, 0.01, 1, 0, 'USDT', $3::timestamptz, g = 1, false, $2::text
  FROM generate_series(1, 2) AS g
