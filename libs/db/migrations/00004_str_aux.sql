-- str_aux: what straux computes from the market data. Samples per symbol and sampling period, IDHR
-- statistics and vectors per symbol, window and period, and the pair matrices and mood (MEA) grids.
-- Prices are numeric; dimensionless statistics computed in float64 are double precision.
-- Every row is keyed by its period, so a redelivered or replayed tick rewrites rows, never adds any.

-- +goose Up

-- One order-book sample per symbol and period. A symbol that could not be sampled still gets its
-- row, with no mid and the reason (exchange error, bad body, timeout, skipped period).
CREATE TABLE str_aux.samples (
    symbol         text             NOT NULL,
    period_start   timestamptz      NOT NULL,
    mid            numeric,
    mid_min        numeric,
    mid_max        numeric,
    best_bid       numeric,
    best_ask       numeric,
    spread_bps     double precision,
    imbalance_top5 double precision,
    bid_vol        numeric,
    ask_vol        numeric,
    n_snapshots    integer          NOT NULL DEFAULT 0,
    -- Quality flags: empty_book, low_samples, irregular_spacing, ...
    flags          text[]           NOT NULL DEFAULT '{}',
    reason         text,
    sampled_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, period_start),
    CONSTRAINT samples_value_or_reason CHECK (mid IS NOT NULL OR reason IS NOT NULL),
    CONSTRAINT samples_imbalance_range CHECK (imbalance_top5 BETWEEN -1 AND 1),
    CONSTRAINT samples_n_snapshots CHECK (n_snapshots >= 0)
);
-- Coverage of one period across the universe.
CREATE INDEX samples_period_idx ON str_aux.samples (period_start);

-- IDHR histogram statistics of a window ending at period_start (DOMAIN.md §2). Kept per period:
-- ΔGFM% and the shift streak refer to earlier cycles.
CREATE TABLE str_aux.window_stats (
    symbol        text             NOT NULL,
    window_label  text             NOT NULL,
    period_start  timestamptz      NOT NULL,
    n_samples     integer          NOT NULL,
    p0            numeric,
    gfm           double precision,
    gfm_abs       numeric,
    gfm_ref       numeric,
    confidence    double precision,
    inertia       double precision,
    disruption    double precision,
    delta_gfm_pct double precision,
    shift         boolean          NOT NULL DEFAULT false,
    shift_streak  integer          NOT NULL DEFAULT 0,
    reason        text,
    computed_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, window_label, period_start),
    CONSTRAINT window_stats_window_binance CHECK (settings.is_binance_interval(window_label)),
    CONSTRAINT window_stats_value_or_reason CHECK (gfm IS NOT NULL OR reason IS NOT NULL),
    CONSTRAINT window_stats_counts CHECK (n_samples >= 0 AND shift_streak >= 0)
);

-- str-aux vectors of a window ending at period_start. Too few samples: NULL vectors and a reason,
-- never made-up values.
CREATE TABLE str_aux.window_vectors (
    symbol              text             NOT NULL,
    window_label        text             NOT NULL,
    period_start        timestamptz      NOT NULL,
    n_samples           integer          NOT NULL,
    v_inner             double precision,
    v_outer             double precision,
    v_tendency          double precision,
    v_tendency_strength double precision,
    v_swap              double precision,
    reason              text,
    computed_at         timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, window_label, period_start),
    CONSTRAINT window_vectors_window_binance CHECK (settings.is_binance_interval(window_label)),
    CONSTRAINT window_vectors_value_or_reason CHECK (
        reason IS NOT NULL
        OR (v_inner IS NOT NULL AND v_outer IS NOT NULL AND v_tendency IS NOT NULL AND v_swap IS NOT NULL)),
    CONSTRAINT window_vectors_n_samples CHECK (n_samples >= 0)
);

-- Pair matrices (DOMAIN.md §3), one whole grid per ts. value is NULL where it is undefined (no
-- previous or opening benchmark yet).
CREATE TABLE str_aux.matrices (
    ts          timestamptz NOT NULL,
    matrix_type text        NOT NULL,
    base        text        NOT NULL,
    quote       text        NOT NULL,
    value       numeric,
    PRIMARY KEY (ts, matrix_type, base, quote),
    CONSTRAINT matrices_type CHECK (matrix_type IN ('benchmark', 'id_pct', 'pct_drv', 'pct_ref', 'ref', 'delta')),
    CONSTRAINT matrices_pair CHECK (base <> quote)
);
-- The newest grid of a type, and the one before it.
CREATE INDEX matrices_type_ts_idx ON str_aux.matrices (matrix_type, ts);

-- MEA per pair: the mood tier of base against quote at ts.
CREATE TABLE str_aux.mea (
    ts          timestamptz      NOT NULL,
    base        text             NOT NULL,
    quote       text             NOT NULL,
    id_pct      double precision,
    z           double precision,
    tier        text             NOT NULL,
    tier_weight double precision NOT NULL,
    PRIMARY KEY (ts, base, quote),
    CONSTRAINT mea_tier CHECK (tier IN ('flat', 'slight', 'normal', 'high', 'extreme')),
    CONSTRAINT mea_pair CHECK (base <> quote)
);

-- MEA per coin: the mood-weighted allocation weight of each coin at ts.
CREATE TABLE str_aux.mea_coins (
    ts          timestamptz      NOT NULL,
    coin        text             NOT NULL,
    balance     numeric,
    tier_sum    double precision NOT NULL,
    mood_coeff  double precision NOT NULL,
    weight      numeric          NOT NULL,
    capped      boolean          NOT NULL DEFAULT false,
    PRIMARY KEY (ts, coin),
    CONSTRAINT mea_coins_mood_coeff CHECK (mood_coeff BETWEEN 0.2 AND 2.0)
);

-- +goose Down
DROP TABLE str_aux.mea_coins;
DROP TABLE str_aux.mea;
DROP TABLE str_aux.matrices;
DROP TABLE str_aux.window_vectors;
DROP TABLE str_aux.window_stats;
DROP TABLE str_aux.samples;
