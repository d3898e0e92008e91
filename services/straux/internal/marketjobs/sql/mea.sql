-- MEA of the newest id_pct grid at or before $1, in one statement (DOMAIN.md §3, as the
-- original's live path moo-aux → grid.ts + lib/mea/mood.ts computes it): one mood coefficient for
-- the grid, then the weight of every cell and the sum of every coin's row.
--
-- Mood, from the str-aux signals of window $4 (30m): each universe symbol of $2 with a vector row
-- of that window (no reason) in (grid − window duration, grid] offers its newest one. At most $5
-- of them go in, chosen deterministically: the ones quoted in $3 (USDT) first, then the rest, each
-- by symbol. Each signal is a mean weighted by the symbol's sample count (at least 1):
--   g = ΔGFM%/100 (over the symbols with a ΔGFM%), t = vTendency/100, s = vSwap/100; 0 without any.
-- Normalised (scales $11–$14, by default 20, 0.02, 0.05, 0.75):
--   GFM = clamp(1 + $11·g, 0.8, 1.2), vT = clamp(0.8 + 0.4·clamp(t/$12, −1, 1), 0.4, 1.2),
--   vS = 0.5·tanh($14·s/$13), moodCoeff = clamp(vT/GFM + vS, 0.2, 2.0)
-- (the outer clamps of vT and vS are the original's; they only absorb float rounding here).
-- Mood id: vT in 6 equal bins of [0, 1.2] (A–F up, G–L down), vS in 6 of [0, 0.5] (a–f / g–l), and
-- |GFM − 1| cut at 0.05/0.10/0.15 (0–3 at or above 1, 4–7 below). A value exactly on a cut takes
-- the lower bin (the original's |x| > cut); values are compared as numeric at float8's 15
-- significant digits, so float noise (0.8 − 0.2 = 0.6000000000000001) does not move a value.
--
-- Cells (every (base, quote) of the grid; n coins, k = max(1, n − 1)):
--   weight = balance(base) × (1/k) × tierWeight(|id_pct|) × moodCoeff,
-- tiers the half-open bands [$8[i], $8[i+1]) named $9[i] weighing $10[i] ($8 ascending; below
-- $8[1] or id_pct undefined: tier none, weight 0). Balances come from $6/$7 (coin, balance); 1
-- when absent. Coins: balance and the sum of the weights of the cells where the coin is the base.
-- Everything is upserted: a re-run rewrites.
--
-- Returns the grid's ts (NULL without a grid: nothing written), cells and coins written, the mood
-- (coefficient, id, symbols used, candidates) and whether window $4 exists in settings.windows.
WITH grid AS (
    SELECT max(ts) AS ts FROM str_aux.matrices WHERE matrix_type = 'id_pct' AND ts <= $1
), win AS (
    SELECT duration FROM settings.windows WHERE label = $4
), candidates AS (
    SELECT u.symbol, greatest(1, v.n_samples)::float8 AS w, v.v_tendency, v.v_swap, st.delta_gfm_pct,
           row_number() OVER (ORDER BY cu.quote_asset = $3 DESC, u.symbol) AS pick
      FROM unnest($2::text[]) AS u(symbol)
      JOIN settings.coin_universe cu ON cu.symbol = u.symbol
     CROSS JOIN grid
     CROSS JOIN win
      JOIN LATERAL (SELECT x.period_start, x.n_samples, x.v_tendency, x.v_swap
                      FROM str_aux.window_vectors x
                     WHERE x.symbol = u.symbol AND x.window_label = $4 AND x.reason IS NULL
                       AND x.period_start <= grid.ts AND x.period_start > grid.ts - win.duration
                     ORDER BY x.period_start DESC LIMIT 1) AS v ON true
      LEFT JOIN str_aux.window_stats st
             ON st.symbol = u.symbol AND st.window_label = $4 AND st.period_start = v.period_start
), signals AS (
    SELECT COALESCE(array_agg(c.symbol ORDER BY c.pick) FILTER (WHERE c.pick <= $5), '{}') AS symbols,
           (SELECT count(*) FROM candidates)::int AS candidates,
           COALESCE(sum(c.w) FILTER (WHERE c.pick <= $5), 0)::int AS samples,
           COALESCE(sum(c.w * c.delta_gfm_pct / 100) FILTER (WHERE c.pick <= $5)
                    / NULLIF(sum(c.w) FILTER (WHERE c.pick <= $5 AND c.delta_gfm_pct IS NOT NULL), 0), 0) AS g,
           COALESCE(sum(c.w * c.v_tendency / 100) FILTER (WHERE c.pick <= $5)
                    / NULLIF(sum(c.w) FILTER (WHERE c.pick <= $5), 0), 0) AS t,
           COALESCE(sum(c.w * c.v_swap / 100) FILTER (WHERE c.pick <= $5)
                    / NULLIF(sum(c.w) FILTER (WHERE c.pick <= $5), 0), 0) AS s
      FROM candidates c
), normalised AS (
    SELECT sg.*,
           least(1.2, greatest(0.8, 1 + $11::float8 * sg.g)) AS gfm_factor,
           least(1.2, greatest(0.4, 0.8 + 0.4 * least(1, greatest(-1, sg.t / $12::float8))))::float8 AS v_t,
           least(0.5, greatest(-0.5, 0.5 * tanh($14::float8 * sg.s / $13::float8)))::float8 AS v_s
      FROM signals sg
), mood AS (
    SELECT nm.*, least(2.0, greatest(0.2, nm.v_t / nm.gfm_factor + nm.v_s))::float8 AS mood_coeff,
           CASE WHEN nm.v_t >= 0 THEN chr(65 + b.vt) ELSE chr(71 + b.vt) END
           || CASE WHEN nm.v_s >= 0 THEN chr(97 + b.vs) ELSE chr(103 + b.vs) END
           || CASE WHEN nm.gfm_factor >= 1 THEN b.gf ELSE 4 + b.gf END AS mood_id
      FROM normalised nm
     CROSS JOIN LATERAL (SELECT
                (SELECT count(*)::int FROM generate_series(1, 5) i WHERE abs(nm.v_t)::numeric * 6 > 1.2 * i) AS vt,
                (SELECT count(*)::int FROM generate_series(1, 5) i WHERE abs(nm.v_s)::numeric * 6 > 0.5 * i) AS vs,
                (SELECT count(*)::int FROM unnest('{0.05,0.10,0.15}'::numeric[]) AS cut
                  WHERE abs(nm.gfm_factor::numeric - 1) > cut) AS gf) AS b
), cells AS (
    SELECT m.ts, m.base, m.quote, m.value AS id_pct FROM str_aux.matrices m JOIN grid g ON m.ts = g.ts
     WHERE m.matrix_type = 'id_pct'
), k AS (
    SELECT count(DISTINCT base)::int AS n, greatest(1, count(DISTINCT base) - 1)::float8 AS k FROM cells
), ins_grid AS (
    INSERT INTO str_aux.mea_grids (ts, window_label, symbols, candidates, samples, g, t, s,
                                   gfm_factor, v_t, v_s, mood_coeff, mood_id, coins)
    SELECT g.ts, $4, md.symbols, md.candidates, md.samples, md.g, md.t, md.s,
           md.gfm_factor, md.v_t, md.v_s, md.mood_coeff, md.mood_id, k.n
      FROM grid g CROSS JOIN mood md CROSS JOIN k
     WHERE g.ts IS NOT NULL
    ON CONFLICT (ts) DO UPDATE SET window_label = EXCLUDED.window_label, symbols = EXCLUDED.symbols,
        candidates = EXCLUDED.candidates, samples = EXCLUDED.samples, g = EXCLUDED.g, t = EXCLUDED.t,
        s = EXCLUDED.s, gfm_factor = EXCLUDED.gfm_factor, v_t = EXCLUDED.v_t, v_s = EXCLUDED.v_s,
        mood_coeff = EXCLUDED.mood_coeff, mood_id = EXCLUDED.mood_id, coins = EXCLUDED.coins,
        computed_at = now()
    RETURNING 1
), weighed AS (
    -- width_bucket over the ascending lower bounds is the number of bounds ≤ |id_pct|: the band
    -- [$8[i], $8[i+1]) is i, below $8[1] it is 0 (and NULL for an undefined id_pct).
    SELECT c.ts, c.base, c.quote, c.id_pct, COALESCE(($9::text[])[tb.i], 'none') AS tier,
           COALESCE(($10::float8[])[tb.i], 0)::float8 AS tier_weight, COALESCE(b.balance, 1)::numeric AS balance
      FROM cells c
      LEFT JOIN unnest($6::text[], $7::numeric[]) AS b(coin, balance) ON b.coin = c.base
     CROSS JOIN LATERAL (SELECT NULLIF(width_bucket(abs(c.id_pct), $8::numeric[]), 0) AS i) AS tb
), cell_weights AS (
    SELECT w.*, w.balance::float8 * (1 / k.k) * w.tier_weight * md.mood_coeff AS weight
      FROM weighed w CROSS JOIN k CROSS JOIN mood md
), ins_cells AS (
    INSERT INTO str_aux.mea (ts, base, quote, id_pct, tier, tier_weight, balance, weight)
    SELECT ts, base, quote, id_pct::float8, tier, tier_weight, balance, weight FROM cell_weights
    ON CONFLICT (ts, base, quote) DO UPDATE SET id_pct = EXCLUDED.id_pct, tier = EXCLUDED.tier,
        tier_weight = EXCLUDED.tier_weight, balance = EXCLUDED.balance, weight = EXCLUDED.weight
    RETURNING 1
), ins_coins AS (
    INSERT INTO str_aux.mea_coins (ts, coin, balance, weight)
    SELECT ts, base, min(balance), sum(weight)::numeric FROM cell_weights GROUP BY ts, base
    ON CONFLICT (ts, coin) DO UPDATE SET balance = EXCLUDED.balance, weight = EXCLUDED.weight
    RETURNING 1
)
SELECT (SELECT ts FROM grid), (SELECT count(*) FROM ins_cells)::int, (SELECT count(*) FROM ins_coins)::int,
       md.mood_coeff, md.mood_id, md.symbols, md.candidates, md.g, md.t, md.s, md.gfm_factor, md.v_t, md.v_s,
       EXISTS (SELECT 1 FROM win)
  FROM mood md
