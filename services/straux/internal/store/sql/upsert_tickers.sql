-- 24h tickers, one row per (symbol, ts); decimals travel as text.
INSERT INTO market.tickers (symbol, ts, last_price, open_price, high_price, low_price, weighted_avg_price,
                            price_change, price_change_pct, bid_price, ask_price, volume, quote_volume,
                            trade_count, open_time, close_time, fetched_at)
SELECT u.symbol, u.ts, u.last::numeric, u.open::numeric, u.high::numeric, u.low::numeric, u.wavg::numeric,
       u.chg::numeric, u.chg_pct::numeric, u.bid::numeric, u.ask::numeric, u.vol::numeric, u.qvol::numeric,
       u.trades, u.open_time, u.close_time, now()
  FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[],
              $15::timestamptz[], $16::timestamptz[])
       AS u(symbol, ts, last, open, high, low, wavg, chg, chg_pct, bid, ask, vol, qvol, trades, open_time, close_time)
ON CONFLICT (symbol, ts) DO UPDATE SET
    last_price = EXCLUDED.last_price, open_price = EXCLUDED.open_price, high_price = EXCLUDED.high_price,
    low_price = EXCLUDED.low_price, weighted_avg_price = EXCLUDED.weighted_avg_price,
    price_change = EXCLUDED.price_change, price_change_pct = EXCLUDED.price_change_pct,
    bid_price = EXCLUDED.bid_price, ask_price = EXCLUDED.ask_price, volume = EXCLUDED.volume,
    quote_volume = EXCLUDED.quote_volume, trade_count = EXCLUDED.trade_count,
    open_time = EXCLUDED.open_time, close_time = EXCLUDED.close_time, fetched_at = EXCLUDED.fetched_at
