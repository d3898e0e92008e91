-- The good samples of symbols $1 with $2 < period_start < $3, per symbol oldest first, with the
-- book volume that weighs them (0 where unknown).
SELECT symbol, period_start, mid::float8, COALESCE((bid_vol + ask_vol)::float8, 0)
  FROM str_aux.samples
 WHERE symbol = ANY($1::text[]) AND period_start > $2 AND period_start < $3 AND mid IS NOT NULL
 ORDER BY symbol, period_start
