-- settings: what the platform samples (the coin universe) and over which windows it computes.

-- +goose Up

-- The kline intervals Binance accepts. settings.windows, market.klines and the str-aux window tables
-- check their interval columns against it, so an invalid window ('3h') cannot be stored anywhere.
-- +goose StatementBegin
CREATE FUNCTION settings.is_binance_interval(label text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN label IN ('1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M');
-- +goose StatementEnd

-- Keeps updated_at honest on tables that have one.
-- +goose StatementBegin
CREATE FUNCTION settings.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- The coins CryptoPill samples. Readers treat a NULL enabled as enabled: COALESCE(enabled, true).
CREATE TABLE settings.coin_universe (
    symbol      text        PRIMARY KEY,
    base_asset  text        NOT NULL,
    quote_asset text        NOT NULL,
    enabled     boolean     DEFAULT true,
    added_at    timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT coin_universe_symbol_format CHECK (symbol ~ '^[A-Z0-9]{2,30}$'),
    CONSTRAINT coin_universe_symbol_is_pair CHECK (symbol = base_asset || quote_asset)
);
-- The change relay publishes old values of updated and deleted rows.
ALTER TABLE settings.coin_universe REPLICA IDENTITY FULL;

CREATE TRIGGER coin_universe_touch BEFORE UPDATE ON settings.coin_universe
    FOR EACH ROW EXECUTE FUNCTION settings.touch_updated_at();

-- The statistics windows. label is a Binance kline interval, so a window's klines can be fetched
-- under the same name; duration follows from the label and cannot disagree with it.
CREATE TABLE settings.windows (
    label      text        PRIMARY KEY,
    -- Not declared NOT NULL: the label check below gives the clearer error for an invalid label.
    duration   interval    GENERATED ALWAYS AS (
        CASE label
            WHEN '1s'  THEN interval '1 second'
            WHEN '1m'  THEN interval '1 minute'
            WHEN '3m'  THEN interval '3 minutes'
            WHEN '5m'  THEN interval '5 minutes'
            WHEN '15m' THEN interval '15 minutes'
            WHEN '30m' THEN interval '30 minutes'
            WHEN '1h'  THEN interval '1 hour'
            WHEN '2h'  THEN interval '2 hours'
            WHEN '4h'  THEN interval '4 hours'
            WHEN '6h'  THEN interval '6 hours'
            WHEN '8h'  THEN interval '8 hours'
            WHEN '12h' THEN interval '12 hours'
            WHEN '1d'  THEN interval '1 day'
            WHEN '3d'  THEN interval '3 days'
            WHEN '1w'  THEN interval '7 days'
            WHEN '1M'  THEN interval '1 month'
        END) STORED,
    -- Sampling cycles (40 s each in the original) the window spans; 30m = 45 cycles.
    cycles     integer     NOT NULL,
    enabled    boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT windows_label_binance_interval CHECK (settings.is_binance_interval(label)),
    CONSTRAINT windows_cycles_positive CHECK (cycles > 0)
);

CREATE TRIGGER windows_touch BEFORE UPDATE ON settings.windows
    FOR EACH ROW EXECUTE FUNCTION settings.touch_updated_at();

-- Defaults for every environment. The original's 3h is not a Binance interval; 4h replaces it.
INSERT INTO settings.windows (label, cycles) VALUES
    ('30m', 45),
    ('1h', 90),
    ('4h', 360);

-- +goose Down
DROP TABLE settings.windows;
DROP TABLE settings.coin_universe;
DROP FUNCTION settings.touch_updated_at();
DROP FUNCTION settings.is_binance_interval(text);
