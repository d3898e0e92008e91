-- Backfilled samples (kline closes) only fill periods that have no sample: they never replace
-- one taken from an order book.
INSERT INTO str_aux.samples (symbol, period_start, mid, mid_min, mid_max, n_snapshots, flags, sampled_at)
SELECT u.symbol, u.period_start, u.mid::numeric, u.mid::numeric, u.mid::numeric, 0, ARRAY['kline_backfill'], now()
  FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(symbol, period_start, mid)
ON CONFLICT (symbol, period_start) DO NOTHING
