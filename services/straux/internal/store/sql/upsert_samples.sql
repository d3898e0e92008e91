-- Write samples, one per (symbol, period): a redelivered tick rewrites the same rows.
-- Decimals travel as text; flags as a comma-separated list.
INSERT INTO str_aux.samples (symbol, period_start, mid, mid_min, mid_max, best_bid, best_ask, spread_bps,
                             imbalance_top5, bid_vol, ask_vol, n_snapshots, flags, reason, sampled_at, source, book_age_ms)
SELECT u.symbol, u.period_start, u.mid::numeric, u.mid_min::numeric, u.mid_max::numeric,
       u.best_bid::numeric, u.best_ask::numeric, u.spread_bps, u.imbalance, u.bid_vol::numeric,
       u.ask_vol::numeric, u.n_snapshots, string_to_array(u.flags, ','), u.reason, u.sampled_at, u.source,
       u.book_age_ms
  FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::float8[], $9::float8[], $10::text[], $11::text[], $12::int[], $13::text[], $14::text[],
              $15::timestamptz[], $16::text[], $17::float8[])
       AS u(symbol, period_start, mid, mid_min, mid_max, best_bid, best_ask, spread_bps, imbalance,
            bid_vol, ask_vol, n_snapshots, flags, reason, sampled_at, source, book_age_ms)
ON CONFLICT (symbol, period_start) DO UPDATE SET
    mid = EXCLUDED.mid, mid_min = EXCLUDED.mid_min, mid_max = EXCLUDED.mid_max,
    best_bid = EXCLUDED.best_bid, best_ask = EXCLUDED.best_ask, spread_bps = EXCLUDED.spread_bps,
    imbalance_top5 = EXCLUDED.imbalance_top5, bid_vol = EXCLUDED.bid_vol, ask_vol = EXCLUDED.ask_vol,
    n_snapshots = EXCLUDED.n_snapshots, flags = EXCLUDED.flags, reason = EXCLUDED.reason,
    sampled_at = EXCLUDED.sampled_at, source = EXCLUDED.source, book_age_ms = EXCLUDED.book_age_ms
