-- The newest window statistics before $3 of every (symbol in $1, window in $2) that has any: the
-- ΔGFM reference, streak and shift carried from cycle to cycle.
SELECT u.symbol, w.label, p.gfm_ref::float8, p.shift_streak, p.shift, p.gfm_abs::float8
  FROM unnest($1::text[]) AS u(symbol)
 CROSS JOIN unnest($2::text[]) AS w(label)
 CROSS JOIN LATERAL (
        SELECT s.gfm_ref, s.shift_streak, s.shift, s.gfm_abs
          FROM str_aux.window_stats s
         WHERE s.symbol = u.symbol AND s.window_label = w.label AND s.period_start < $3
           AND s.gfm IS NOT NULL
         ORDER BY s.period_start DESC
         LIMIT 1) AS p
