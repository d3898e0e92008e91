-- A period's good samples by where their books came from (stream, rest; other: kline backfill).
SELECT coalesce(source, 'other'), count(*)
  FROM str_aux.samples
 WHERE period_start = $1 AND mid IS NOT NULL
 GROUP BY 1
