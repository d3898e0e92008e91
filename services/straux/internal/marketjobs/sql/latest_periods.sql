-- The newest good sample period of each symbol in $1 (symbols without one are left out), and the
-- newest tick period length (NULL without ticks yet).
SELECT u.symbol, s.period_start,
       (SELECT extract(epoch FROM period)::float8 FROM str_aux.tick_periods ORDER BY period_start DESC LIMIT 1)
  FROM unnest($1::text[]) AS u(symbol)
 CROSS JOIN LATERAL (SELECT max(period_start) AS period_start FROM str_aux.samples
                      WHERE symbol = u.symbol AND mid IS NOT NULL) AS s
 WHERE s.period_start IS NOT NULL
