-- Backfilled samples (kline closes) only fill periods without a price: no row yet, or a row that
-- records why there is none (a failed or skipped period). They never replace a sample taken from
-- an order book. Returns the periods written.
INSERT INTO str_aux.samples (symbol, period_start, mid, mid_min, mid_max, n_snapshots, flags, sampled_at)
SELECT u.symbol, u.period_start, u.mid::numeric, u.mid::numeric, u.mid::numeric, 0, ARRAY['kline_backfill'], now()
  FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(symbol, period_start, mid)
ON CONFLICT (symbol, period_start) DO UPDATE
   SET mid = EXCLUDED.mid, mid_min = EXCLUDED.mid_min, mid_max = EXCLUDED.mid_max, n_snapshots = 0,
       flags = EXCLUDED.flags, reason = NULL, sampled_at = EXCLUDED.sampled_at
 WHERE str_aux.samples.mid IS NULL
RETURNING period_start
