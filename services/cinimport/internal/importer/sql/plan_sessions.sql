-- What to import for each session of $1 that is OPEN: its scope, its start, its watermark (the
-- newest trade imported, in (trade_time, symbol, trade_id) order; NULL before the first import)
-- and where the rescan of trades at or behind the watermark starts: the watermark less the
-- late-arrival margin $3, or the session's earliest known-new trade time in $2 when that is
-- earlier, or the session's start when $4 asks for a full rescan; never before the start.
-- $1 session ids, $2 per session the earliest trade time known to be new (or NULL), $3 margin,
-- $4 full rescan.
SELECT r.session_id, r.account_scope, r.started_at,
       c.last_trade_time, c.last_symbol, c.last_trade_id,
       CASE WHEN $4::boolean THEN r.started_at
            ELSE greatest(r.started_at, least(c.last_trade_time - $3::interval, coalesce(h.since, 'infinity')))
       END AS rescan_from
  FROM unnest($1::bigint[], $2::timestamptz[]) AS h (session_id, since)
  JOIN cin_aux.rt_session r USING (session_id)
  LEFT JOIN cin_aux.session_import_cursor c USING (session_id)
 WHERE r.status = 'OPEN'
 ORDER BY r.session_id
