-- cpctl smoke: rows the end-to-end pass may have left (session $1, scope $2, symbol $3), by table.
SELECT tbl, n FROM (
    SELECT 'cin_aux.rt_session' AS tbl, count(*) AS n FROM cin_aux.rt_session WHERE session_id = $1 OR account_scope = $2
    UNION ALL SELECT 'cin_aux.rt_move', count(*) FROM cin_aux.rt_move WHERE session_id = $1
    UNION ALL SELECT 'cin_aux.session_import_cursor', count(*) FROM cin_aux.session_import_cursor WHERE session_id = $1
    UNION ALL SELECT 'cin_aux.session_pending_market', count(*) FROM cin_aux.session_pending_market WHERE session_id = $1
    UNION ALL SELECT 'market.account_trades', count(*) FROM market.account_trades WHERE account_scope = $2
    UNION ALL SELECT 'market.trade_cursors', count(*) FROM market.trade_cursors WHERE account_scope = $2
    UNION ALL SELECT 'settings.coin_universe', count(*) FROM settings.coin_universe WHERE symbol = $3
    UNION ALL SELECT 'ingest.jobs', count(*) FROM ingest.jobs WHERE payload->>'symbol' = $3
    UNION ALL SELECT 'ops.job_run', count(*) FROM ops.job_run WHERE kind <> 'oneshot' AND strpos(name, $3) > 0
    UNION ALL SELECT 'str_aux.samples', count(*) FROM str_aux.samples WHERE symbol = $3
    UNION ALL SELECT 'str_aux.tick_claims', count(*) FROM str_aux.tick_claims WHERE symbol = $3
    UNION ALL SELECT 'str_aux.window_stats', count(*) FROM str_aux.window_stats WHERE symbol = $3
    UNION ALL SELECT 'str_aux.window_vectors', count(*) FROM str_aux.window_vectors WHERE symbol = $3
    UNION ALL SELECT 'str_aux.backfills', count(*) FROM str_aux.backfills WHERE symbol = $3
    UNION ALL SELECT 'market.klines', count(*) FROM market.klines WHERE symbol = $3
    UNION ALL SELECT 'market.tickers', count(*) FROM market.tickers WHERE symbol = $3
) x WHERE n > 0 ORDER BY tbl
