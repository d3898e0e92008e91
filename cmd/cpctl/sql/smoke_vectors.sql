-- cpctl smoke: str-aux statistics and vectors stuck at their bounds. One pass over the newest $2
-- rows of every (enabled symbol, enabled window), read backwards through the primary keys, then
-- one row per finding (kind 'window' or 'symbol'):
--   window: at the newest period of a window, a series is at its bound for every symbol (at least
--           2) that has a value there;
--   symbol: a series is at its bound in each of one symbol's newest $1 rows of a window.
-- since is the oldest period of the run of such periods/rows that ends at the newest (within the
-- $2 rows read; run_at_history says the run may reach past them).
-- Bounds: vInner, vOuter, vTendency, vSwap ±S = ±100 (tanh-saturated or clamped), the tendency's
-- strength |r| ≤ 1, IDHR confidence 1/(1 + mean|r−μ|/σ) in [0.5, 1] (1: every price equal). A value
-- within $3 (relative) of a bound counts as at it: a saturated tanh only approaches ±1.
-- Only the observations at a bound are kept past the first pass, so a healthy store costs one
-- index walk per (symbol, window) and no sort of the rows read.
WITH pairs AS (
    SELECT cu.symbol, w.label FROM settings.coin_universe cu CROSS JOIN settings.windows w
     WHERE COALESCE(cu.enabled, true) AND w.enabled
), recent AS MATERIALIZED (
    SELECT p.symbol, p.label AS window_label, x.*
      FROM pairs p
     CROSS JOIN LATERAL (SELECT v.period_start, v.reason, v.v_inner, v.v_outer, v.v_tendency,
                                v.v_tendency_strength, v.v_swap, st.confidence,
                                row_number() OVER (ORDER BY v.period_start DESC) AS rn
                           FROM str_aux.window_vectors v
                           LEFT JOIN str_aux.window_stats st
                                  ON st.symbol = v.symbol AND st.window_label = v.window_label
                                 AND st.period_start = v.period_start
                          WHERE v.symbol = p.symbol AND v.window_label = p.label
                          ORDER BY v.period_start DESC LIMIT $2) AS x
), pinned AS MATERIALIZED (
    SELECT r.symbol, r.window_label, r.period_start, r.rn, o.series,
           CASE WHEN o.value >= o.hi - $3 * abs(o.hi) THEN o.hi ELSE o.lo END AS bound
      FROM recent r
     CROSS JOIN LATERAL (VALUES
            ('v_inner', r.v_inner, -100::float8, 100::float8),
            ('v_outer', r.v_outer, -100, 100),
            ('v_tendency', r.v_tendency, -100, 100),
            ('v_swap', r.v_swap, -100, 100),
            ('v_tendency_strength', r.v_tendency_strength, NULL, 1),
            ('confidence', r.confidence, 0.5, 1)) AS o(series, value, lo, hi)
     WHERE o.value >= o.hi - $3 * abs(o.hi) OR o.value <= o.lo + $3 * abs(o.lo)
), ranked AS (
    -- A row belongs to the run that ends at the newest row when its rn equals its rank among the
    -- pinned rows (rows 1..k all pinned).
    SELECT p.*, row_number() OVER (PARTITION BY symbol, window_label, series ORDER BY rn) AS rank FROM pinned p
), symbol_findings AS (
    SELECT 'symbol' AS kind, window_label, symbol, series, count(*)::int AS run,
           string_agg(DISTINCT bound::text, '|') AS bound, min(period_start) AS since,
           max(period_start) AS newest, 1 AS symbols, count(*) >= $2 AS run_at_history
      FROM ranked WHERE rn = rank
     GROUP BY window_label, symbol, series
    HAVING count(*) >= $1
), periods AS (
    -- Every period of every window, how many symbols have vectors (and a confidence) there.
    SELECT window_label, period_start, count(*) FILTER (WHERE reason IS NULL) AS with_vectors,
           count(confidence) AS with_confidence,
           row_number() OVER (PARTITION BY window_label ORDER BY period_start DESC) AS prn
      FROM recent GROUP BY window_label, period_start
), period_pins AS (
    SELECT window_label, period_start, series, count(*) AS symbols, string_agg(DISTINCT bound::text, '|') AS bound
      FROM pinned GROUP BY window_label, period_start, series
), window_periods AS (
    -- A period is pinned for a series when every symbol (at least two) with a value has it at a bound.
    SELECT pp.*, pr.prn,
           row_number() OVER (PARTITION BY pp.window_label, pp.series ORDER BY pr.prn) AS rank
      FROM period_pins pp
      JOIN periods pr USING (window_label, period_start)
     WHERE pp.symbols >= 2
       AND pp.symbols = CASE WHEN pp.series = 'confidence' THEN pr.with_confidence ELSE pr.with_vectors END
), window_findings AS (
    SELECT 'window' AS kind, window_label, NULL::text AS symbol, series, count(*)::int AS run,
           (array_agg(bound ORDER BY prn))[1] AS bound, min(period_start) AS since,
           max(period_start) AS newest, (array_agg(symbols ORDER BY prn))[1]::int AS symbols,
           count(*) = (SELECT max(prn) FROM periods p WHERE p.window_label = w.window_label) AS run_at_history
      FROM window_periods w WHERE prn = rank
     GROUP BY window_label, series
)
SELECT kind, window_label, symbol, series, run, bound, since, newest, symbols, run_at_history FROM window_findings
UNION ALL
SELECT kind, window_label, symbol, series, run, bound, since, newest, symbols, run_at_history FROM symbol_findings
ORDER BY kind DESC, window_label, symbol NULLS FIRST, series
