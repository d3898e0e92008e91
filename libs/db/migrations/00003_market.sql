-- market: what the exchange said. Reference data (symbols), market data (klines, tickers, order
-- books), the account's own trades, and the cursors that make fetching them incremental.
-- Prices and quantities are numeric, exactly as Binance sent them as strings.

-- +goose Up

-- exchangeInfo symbols[]: which markets exist and whether they trade.
CREATE TABLE market.symbols (
    symbol      text        PRIMARY KEY,
    base_asset  text        NOT NULL,
    quote_asset text        NOT NULL,
    status      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Pricing through USDT legs looks markets up by their assets.
CREATE INDEX symbols_assets_idx ON market.symbols (base_asset, quote_asset);

-- Closed candles only, upserted by open time.
CREATE TABLE market.klines (
    symbol                 text        NOT NULL,
    interval               text        NOT NULL,
    open_time              timestamptz NOT NULL,
    open                   numeric     NOT NULL,
    high                   numeric     NOT NULL,
    low                    numeric     NOT NULL,
    close                  numeric     NOT NULL,
    volume                 numeric     NOT NULL,
    close_time             timestamptz NOT NULL,
    quote_volume           numeric     NOT NULL,
    trades                 bigint      NOT NULL,
    taker_buy_base_volume  numeric     NOT NULL,
    taker_buy_quote_volume numeric     NOT NULL,
    fetched_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval, open_time),
    CONSTRAINT klines_interval_binance CHECK (settings.is_binance_interval(interval)),
    CONSTRAINT klines_time_order CHECK (close_time > open_time),
    CONSTRAINT klines_range CHECK (low <= high)
);

-- 24h rolling ticker statistics, one sample per symbol and sampling period.
CREATE TABLE market.tickers (
    symbol             text        NOT NULL,
    ts                 timestamptz NOT NULL,
    last_price         numeric     NOT NULL,
    open_price         numeric,
    high_price         numeric,
    low_price          numeric,
    weighted_avg_price numeric,
    price_change       numeric,
    price_change_pct   numeric,
    bid_price          numeric,
    ask_price          numeric,
    volume             numeric,
    quote_volume       numeric,
    trade_count        bigint,
    open_time          timestamptz,
    close_time         timestamptz,
    fetched_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts)
);

-- Order-book depth as fetched: bids and asks are the exchange's [price, qty] string pairs, best first.
CREATE TABLE market.orderbook_snapshots (
    symbol         text        NOT NULL,
    ts             timestamptz NOT NULL,
    last_update_id bigint      NOT NULL,
    depth_limit    integer     NOT NULL,
    bids           jsonb       NOT NULL,
    asks           jsonb       NOT NULL,
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts),
    CONSTRAINT orderbook_snapshots_sides_are_arrays
        CHECK (jsonb_typeof(bids) = 'array' AND jsonb_typeof(asks) = 'array'),
    CONSTRAINT orderbook_snapshots_depth_limit CHECK (depth_limit BETWEEN 1 AND 5000)
);

-- The account's fills, from GET /api/v3/myTrades. A trade id is unique within its symbol.
-- Keeps its primary key as replica identity: the change relay only needs the key of old rows here.
CREATE TABLE market.account_trades (
    symbol           text        NOT NULL,
    trade_id         bigint      NOT NULL,
    order_id         bigint      NOT NULL,
    order_list_id    bigint,
    price            numeric     NOT NULL,
    qty              numeric     NOT NULL,
    quote_qty        numeric     NOT NULL,
    commission       numeric     NOT NULL,
    commission_asset text        NOT NULL,
    trade_time       timestamptz NOT NULL,
    is_buyer         boolean     NOT NULL,
    is_maker         boolean     NOT NULL,
    is_best_match    boolean,
    account_scope    text        NOT NULL DEFAULT 'default',
    raw              jsonb,
    fetched_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, trade_id),
    CONSTRAINT account_trades_positive CHECK (price > 0 AND qty > 0 AND quote_qty >= 0 AND commission >= 0)
);
-- The session importer reads a scope's trades from a session's start (or its watermark) onwards.
CREATE INDEX account_trades_scope_time_idx ON market.account_trades (account_scope, trade_time);

-- myTrades fromId cursor: the highest trade id stored per account scope and symbol.
CREATE TABLE market.trade_cursors (
    account_scope text        NOT NULL,
    symbol        text        NOT NULL,
    last_trade_id bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_scope, symbol)
);

-- klines cursor: the open time of the newest closed candle stored per symbol and interval.
CREATE TABLE market.kline_cursors (
    symbol         text        NOT NULL,
    interval       text        NOT NULL,
    last_open_time timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, interval),
    CONSTRAINT kline_cursors_interval_binance CHECK (settings.is_binance_interval(interval))
);

-- +goose Down
DROP TABLE market.kline_cursors;
DROP TABLE market.trade_cursors;
DROP TABLE market.account_trades;
DROP TABLE market.orderbook_snapshots;
DROP TABLE market.tickers;
DROP TABLE market.klines;
DROP TABLE market.symbols;
