-- cpctl smoke: remove the rows the end-to-end pass created, but its session (smoke_e2e_cleanup_session.sql
-- follows, and takes the session's moves with it by trigger): what the importer kept for session
-- $1, its account trades (scope $2), and the smoke symbol ($3) with everything the seeder, the job
-- engine and straux wrote for it. Returns the rows removed.
WITH c AS (DELETE FROM cin_aux.session_import_cursor WHERE session_id = $1 RETURNING 1),
     p AS (DELETE FROM cin_aux.session_pending_market WHERE session_id = $1 RETURNING 1),
     t AS (DELETE FROM market.account_trades WHERE account_scope = $2 RETURNING 1),
     tc AS (DELETE FROM market.trade_cursors WHERE account_scope = $2 RETURNING 1),
     u AS (DELETE FROM settings.coin_universe WHERE symbol = $3 RETURNING 1),
     j AS (DELETE FROM ingest.jobs WHERE payload->>'symbol' = $3 RETURNING id),
     jr AS (DELETE FROM ops.job_run WHERE job_id IN (SELECT id FROM ingest.jobs WHERE payload->>'symbol' = $3) RETURNING 1),
     sa AS (DELETE FROM str_aux.samples WHERE symbol = $3 RETURNING 1),
     cl AS (DELETE FROM str_aux.tick_claims WHERE symbol = $3 RETURNING 1),
     ws AS (DELETE FROM str_aux.window_stats WHERE symbol = $3 RETURNING 1),
     wv AS (DELETE FROM str_aux.window_vectors WHERE symbol = $3 RETURNING 1),
     b AS (DELETE FROM str_aux.backfills WHERE symbol = $3 RETURNING 1),
     k AS (DELETE FROM market.klines WHERE symbol = $3 RETURNING 1),
     kc AS (DELETE FROM market.kline_cursors WHERE symbol = $3 RETURNING 1),
     tk AS (DELETE FROM market.tickers WHERE symbol = $3 RETURNING 1),
     ob AS (DELETE FROM market.orderbook_snapshots WHERE symbol = $3 RETURNING 1)
SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM p)
     + (SELECT count(*) FROM t) + (SELECT count(*) FROM tc) + (SELECT count(*) FROM u) + (SELECT count(*) FROM j)
     + (SELECT count(*) FROM sa) + (SELECT count(*) FROM cl) + (SELECT count(*) FROM ws) + (SELECT count(*) FROM wv)
     + (SELECT count(*) FROM b) + (SELECT count(*) FROM k) + (SELECT count(*) FROM kc) + (SELECT count(*) FROM tk)
     + (SELECT count(*) FROM ob) + (SELECT count(*) FROM jr)
