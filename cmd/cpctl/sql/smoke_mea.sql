-- cpctl smoke: the MEA mood stuck at a clamp. Over the newest $2 grids, for the coefficient
-- (clamp 0.2–2.0) and its normalised inputs (GFM 0.8–1.2, vT 0.4–1.2, vS ±0.5, tanh-saturated): the
-- run of grids at a bound that ends at the newest grid, when it is at least $1 grids long. A value
-- within $3 (relative) of a bound counts as at it. mood_symbols at 0 is a mood computed from no
-- signal at all (no universe symbol had a recent vector): the neutral 0.8, "Da0". Also returns, once, how many grids there are
-- (series NULL) so that "no grids yet" is told apart from "healthy".
WITH grids AS (
    SELECT ts, mood_coeff, mood_id, gfm_factor, v_t, v_s, cardinality(symbols) AS n_symbols,
           row_number() OVER (ORDER BY ts DESC) AS rn
      FROM str_aux.mea_grids ORDER BY ts DESC LIMIT $2
), obs AS (
    SELECT g.ts, g.rn, g.mood_id, o.series, o.value,
           CASE WHEN o.value >= o.hi - $3 * abs(o.hi) THEN o.hi
                WHEN o.value <= o.lo + $3 * abs(o.lo) THEN o.lo END AS bound
      FROM grids g
     CROSS JOIN LATERAL (VALUES
            ('mood_coeff', g.mood_coeff, 0.2::float8, 2.0::float8),
            ('gfm_factor', g.gfm_factor, 0.8, 1.2),
            ('v_t', g.v_t, 0.4, 1.2),
            ('v_s', g.v_s, -0.5, 0.5),
            ('mood_symbols', g.n_symbols, 0, NULL)) AS o(series, value, lo, hi)
), runs AS (
    SELECT series, count(*) AS n, COALESCE(min(rn) FILTER (WHERE bound IS NULL) - 1, count(*)) AS run
      FROM obs GROUP BY series
)
SELECT * FROM (
    SELECT r.series, r.run::int,
           (SELECT string_agg(DISTINCT b.bound::text, '|') FROM obs b WHERE b.series = r.series AND b.rn <= r.run) AS bound,
           s.ts AS since, n.ts AS newest, n.mood_id, r.run = r.n AND r.n >= $2 AS run_at_history,
           (SELECT count(*)::int FROM str_aux.mea_grids) AS grids
      FROM runs r
      JOIN obs s ON s.series = r.series AND s.rn = r.run
      JOIN obs n ON n.series = r.series AND n.rn = 1
     WHERE r.run >= $1
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*)::int FROM str_aux.mea_grids)
) AS u
-- The count first, then the coefficient, then its inputs.
ORDER BY series IS NOT NULL, series <> 'mood_coeff', series
