-- The symbols of a universe without a price in one period: no sample row, or one that records
-- why there is none (failed or skipped). What a replayed tick repairs from klines.
SELECT u.symbol
  FROM unnest($2::text[]) AS u(symbol)
 WHERE NOT EXISTS (SELECT 1 FROM str_aux.samples s
                    WHERE s.symbol = u.symbol AND s.period_start = $1 AND s.mid IS NOT NULL)
 ORDER BY u.symbol
