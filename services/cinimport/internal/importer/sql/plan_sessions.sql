-- What to import for each session of $1 that is OPEN: its scope, its start, its watermark (the
-- newest trade imported, in (trade_time, symbol, trade_id) order; NULL before the first import),
-- the snapshot its last import read (trades that snapshot could not see are looked at again;
-- NULL: every trade is), where a rescan by trade time starts (the session's
-- start on a full rescan ($3), else its earliest known-new trade time in $2, never before the
-- start; NULL: no rescan), and the markets its imports passed over as unknown. Also, the same on
-- every row, this import's own snapshot.
-- $1 session ids, $2 per session the earliest trade time known to be new (or NULL), $3 full rescan.
SELECT r.session_id, r.account_scope, r.started_at,
       c.last_trade_time, c.last_symbol, c.last_trade_id, c.seen_snapshot::text,
       CASE WHEN $3::boolean THEN r.started_at WHEN h.since IS NOT NULL THEN greatest(r.started_at, h.since) END AS rescan_from,
       (SELECT array_agg(pm.symbol ORDER BY pm.symbol) FROM cin_aux.session_pending_market pm
         WHERE pm.session_id = r.session_id) AS pending,
       pg_current_snapshot()::text AS snapshot
  FROM unnest($1::bigint[], $2::timestamptz[]) AS h (session_id, since)
  JOIN cin_aux.rt_session r USING (session_id)
  LEFT JOIN cin_aux.session_import_cursor c USING (session_id)
 WHERE r.status = 'OPEN'
 ORDER BY r.session_id
