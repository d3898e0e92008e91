-- Bench data: $1 account trades spread evenly over 20 symbols and the $2 days before now (scope
-- 'default'), 4 of the symbols quoted in BTC, ETH or BNB; every 20th commission is paid in BNB,
-- else buyers pay in the base asset and sellers in the quote asset, as on Binance. Plus the USDT
-- legs that price the non-USDT quotes and BNB fees: a market.tickers sample every 40 s of BTCUSDT,
-- ETHUSDT and BNBUSDT, and the 20 markets in market.symbols.
WITH syms (n, symbol, base, quote, px) AS (
    VALUES (0, 'BTCUSDT', 'BTC', 'USDT', 60000.0), (1, 'ETHUSDT', 'ETH', 'USDT', 3000.0),
           (2, 'BNBUSDT', 'BNB', 'USDT', 600.0), (3, 'SOLUSDT', 'SOL', 'USDT', 150.0),
           (4, 'ADAUSDT', 'ADA', 'USDT', 0.5), (5, 'XRPUSDT', 'XRP', 'USDT', 0.6),
           (6, 'DOGEUSDT', 'DOGE', 'USDT', 0.1), (7, 'DOTUSDT', 'DOT', 'USDT', 7.0),
           (8, 'LINKUSDT', 'LINK', 'USDT', 15.0), (9, 'LTCUSDT', 'LTC', 'USDT', 80.0),
           (10, 'AVAXUSDT', 'AVAX', 'USDT', 30.0), (11, 'TRXUSDT', 'TRX', 'USDT', 0.12),
           (12, 'ATOMUSDT', 'ATOM', 'USDT', 9.0), (13, 'UNIUSDT', 'UNI', 'USDT', 8.0),
           (14, 'NEARUSDT', 'NEAR', 'USDT', 5.0), (15, 'ETHBTC', 'ETH', 'BTC', 0.05),
           (16, 'BNBBTC', 'BNB', 'BTC', 0.01), (17, 'SOLETH', 'SOL', 'ETH', 0.05),
           (18, 'LINKETH', 'LINK', 'ETH', 0.005), (19, 'ADABNB', 'ADA', 'BNB', 0.0008)
), markets AS (
    INSERT INTO market.symbols (symbol, base_asset, quote_asset, status)
    SELECT symbol, base, quote, 'TRADING' FROM syms
    ON CONFLICT (symbol) DO NOTHING
), span AS (
    SELECT now() - make_interval(days => $2::integer) AS t0,
           make_interval(days => $2::integer) / ($1::bigint / 20) AS step
), tickers AS (
    INSERT INTO market.tickers (symbol, ts, last_price)
    SELECT s.symbol, span.t0 - interval '1 hour' + g * interval '40 s',
           round((s.px * (1 + 0.1 * sin(g / 500.0)))::numeric, 8)
      FROM span, syms s, generate_series(0, ($2::integer * 86400 + 7200) / 40) g
     WHERE s.symbol IN ('BTCUSDT', 'ETHUSDT', 'BNBUSDT')
)
INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
                                   commission_asset, trade_time, is_buyer, is_maker, account_scope)
SELECT s.symbol, g, g / 2, p.price, p.qty, round(p.price * p.qty, 8),
       CASE WHEN g % 20 = 0 THEN round(p.price * p.qty * 0.00075 / 600, 8)
            WHEN g % 2 = 0 THEN round(p.qty * 0.001, 8)
            ELSE round(p.price * p.qty * 0.001, 8) END,
       CASE WHEN g % 20 = 0 THEN 'BNB' WHEN g % 2 = 0 THEN s.base ELSE s.quote END,
       span.t0 + (g - 1) * span.step + s.n * (span.step / 20),
       g % 2 = 0, g % 3 = 0, 'default'
  FROM span, generate_series(1, $1::bigint / 20) g
 CROSS JOIN syms s
 CROSS JOIN LATERAL (SELECT round((s.px * (1 + 0.1 * sin(g / 1000.0)))::numeric, 8) AS price,
                            round((1 + (g % 97))::numeric / 10, 4) AS qty) p
