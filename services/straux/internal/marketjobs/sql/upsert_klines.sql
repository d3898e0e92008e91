-- Closed candles of one (symbol $1, interval $2), upserted by open time; decimals travel as text.
INSERT INTO market.klines (symbol, interval, open_time, open, high, low, close, volume, close_time,
                           quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume, fetched_at)
SELECT $1, $2, u.open_time, u.o::numeric, u.h::numeric, u.l::numeric, u.c::numeric, u.v::numeric, u.close_time,
       u.qv::numeric, u.trades, u.tbv::numeric, u.tqv::numeric, now()
  FROM unnest($3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
              $10::text[], $11::bigint[], $12::text[], $13::text[])
       AS u(open_time, o, h, l, c, v, close_time, qv, trades, tbv, tqv)
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, close_time = EXCLUDED.close_time, quote_volume = EXCLUDED.quote_volume,
    trades = EXCLUDED.trades, taker_buy_base_volume = EXCLUDED.taker_buy_base_volume,
    taker_buy_quote_volume = EXCLUDED.taker_buy_quote_volume, fetched_at = EXCLUDED.fetched_at
