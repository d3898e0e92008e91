-- The good samples of symbols $1 with $2 < period_start < $3, per symbol oldest first, with the
-- book volume that weighs them (0 where unknown). One primary-key range scan per symbol: the
-- subquery's OFFSET 0 keeps the planner from flattening it into a join. The flat form
-- (symbol = ANY($1) AND …) gets a bitmap scan that rechecks every row against the whole array
-- once the table has statistics: 20× slower on 100 symbols.
SELECT u.symbol, s.period_start, s.mid::float8, COALESCE((s.bid_vol + s.ask_vol)::float8, 0)
  FROM unnest($1::text[]) WITH ORDINALITY AS u(symbol, ord)
 CROSS JOIN LATERAL (
        SELECT period_start, mid, bid_vol, ask_vol
          FROM str_aux.samples
         WHERE symbol = u.symbol AND period_start > $2 AND period_start < $3 AND mid IS NOT NULL
         ORDER BY period_start
        OFFSET 0) AS s
 ORDER BY u.ord, s.period_start
