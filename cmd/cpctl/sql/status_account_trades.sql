-- The account trades cinimport syncs, per scope with myTrades cursors: symbols with a cursor, the
-- newest cursor update (a reconciliation sweep that fetched trades), and the newest trade with
-- when it was stored (seconds after its time: the user data stream; up to a sweep interval: the
-- sweeps). Index-backed (account_trades_scope_time_idx): no scan of the trades.
SELECT s.account_scope, s.symbols, s.cursor_updated, t.trade_time, t.fetched_at
  FROM (SELECT account_scope, count(*) AS symbols, max(updated_at) AS cursor_updated
          FROM market.trade_cursors GROUP BY account_scope) s
  LEFT JOIN LATERAL (SELECT a.trade_time, a.fetched_at FROM market.account_trades a
                      WHERE a.account_scope = s.account_scope ORDER BY a.trade_time DESC LIMIT 1) t ON true
 ORDER BY s.account_scope
