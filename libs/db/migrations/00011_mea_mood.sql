-- str_aux MEA as the original's live code computes it (DOMAIN.md §3): ONE mood coefficient per
-- grid, from normalised, sample-weighted universe signals, recorded with its inputs and mood id;
-- per-cell weights balance × (1/k) × tierWeight(|id_pct|) × moodCoeff with the Alpha–Epsilon tiers.
-- The rows written before this migration used raw inputs (the coefficient pinned at its 2.0
-- clamp) and ad-hoc tiers; they are derived data, so they are deleted, and compute_mea rewrites
-- any grid it is asked for.

-- +goose Up

-- One row per MEA grid: the mood and everything it was computed from.
CREATE TABLE str_aux.mea_grids (
    ts           timestamptz      PRIMARY KEY,
    -- The str-aux window the signals come from (30m) and the symbols that went in, in the order
    -- they were chosen (at most the configured 12); candidates counts every symbol that had a
    -- usable vector, so a cut is visible.
    window_label text             NOT NULL,
    symbols      text[]           NOT NULL,
    candidates   integer          NOT NULL,
    -- Σ of the symbols' sample-count weights.
    samples      integer          NOT NULL,
    -- Sample-weighted means: g = ΔGFM%/100, t = vTendency/100, s = vSwap/100 (0 when none).
    g            double precision NOT NULL,
    t            double precision NOT NULL,
    s            double precision NOT NULL,
    -- Normalised inputs: GFM = clamp(1 + 20g, 0.8, 1.2), vT = 0.8 + 0.4·clamp(t/0.02, −1, 1),
    -- vS = 0.5·tanh(0.75·s/0.05) (the defaults; the scales are configurable).
    gfm_factor   double precision NOT NULL,
    v_t          double precision NOT NULL,
    v_s          double precision NOT NULL,
    mood_coeff   double precision NOT NULL,
    mood_id      text             NOT NULL,
    -- n coins in the grid; every cell is divided by k = n − 1.
    coins        integer          NOT NULL,
    computed_at  timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT mea_grids_counts CHECK (candidates >= cardinality(symbols) AND samples >= 0 AND coins >= 0),
    CONSTRAINT mea_grids_gfm_factor CHECK (gfm_factor BETWEEN 0.8 AND 1.2),
    CONSTRAINT mea_grids_v_t CHECK (v_t BETWEEN 0.4 AND 1.2),
    CONSTRAINT mea_grids_v_s CHECK (v_s BETWEEN -0.5 AND 0.5),
    CONSTRAINT mea_grids_mood_coeff CHECK (mood_coeff BETWEEN 0.2 AND 2.0),
    CONSTRAINT mea_grids_mood_id CHECK (mood_id ~ '^[A-L][a-l][0-7]$')
);

-- Per cell: the tier of |id_pct| and the cell's weight. z (= |id_pct|) is gone: it was id_pct's
-- absolute value under another name.
DELETE FROM str_aux.mea;
ALTER TABLE str_aux.mea
    DROP CONSTRAINT mea_tier,
    DROP COLUMN z,
    ADD COLUMN balance numeric          NOT NULL,
    ADD COLUMN weight  double precision NOT NULL,
    ADD CONSTRAINT mea_tier CHECK (tier IN ('none', 'alpha', 'beta', 'gamma', 'delta', 'epsilon')),
    ADD CONSTRAINT mea_grid_fk FOREIGN KEY (ts) REFERENCES str_aux.mea_grids (ts) ON DELETE CASCADE;

-- Per coin: the sum of its row's cell weights (what the grid allocates out of it). The per-coin
-- mood, tier sum and cap are gone: the mood is the grid's, and the original has no cap.
DELETE FROM str_aux.mea_coins;
ALTER TABLE str_aux.mea_coins
    DROP CONSTRAINT mea_coins_mood_coeff,
    DROP COLUMN tier_sum,
    DROP COLUMN mood_coeff,
    DROP COLUMN capped,
    ADD CONSTRAINT mea_coins_grid_fk FOREIGN KEY (ts) REFERENCES str_aux.mea_grids (ts) ON DELETE CASCADE;

-- +goose Down
DELETE FROM str_aux.mea_coins;
ALTER TABLE str_aux.mea_coins
    DROP CONSTRAINT mea_coins_grid_fk,
    ADD COLUMN tier_sum   double precision NOT NULL,
    ADD COLUMN mood_coeff double precision NOT NULL,
    ADD COLUMN capped     boolean          NOT NULL DEFAULT false,
    ADD CONSTRAINT mea_coins_mood_coeff CHECK (mood_coeff BETWEEN 0.2 AND 2.0);
DELETE FROM str_aux.mea;
ALTER TABLE str_aux.mea
    DROP CONSTRAINT mea_grid_fk,
    DROP CONSTRAINT mea_tier,
    DROP COLUMN weight,
    DROP COLUMN balance,
    ADD COLUMN z double precision,
    ADD CONSTRAINT mea_tier CHECK (tier IN ('flat', 'slight', 'normal', 'high', 'extreme'));
DROP TABLE str_aux.mea_grids;
