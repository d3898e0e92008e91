-- What to import for each session of $1 that is OPEN: its scope, its start, its watermark (the
-- newest trade imported, in (trade_time, symbol, trade_id) order; NULL before the first import),
-- the snapshot its last import read, where a rescan by trade time starts and ends, the markets
-- its imports passed over as unknown, and, the same on every row, this import's own snapshot and
-- the cluster's system identifier.
--
-- The snapshot (trades it could not see are looked at again) is used only if it was taken in
-- this cluster and is not ahead of it; otherwise it is NULL (every trade is looked at, once) and
-- snapshot_discarded says why:
--   other_cluster       taken in another cluster (a dump restored here: xids mean nothing here);
--   unrecorded_cluster  its cluster was not recorded (a cursor from before migration 00013);
--   ahead_of_cluster    its xmax is beyond this cluster's next xid (a restore, or a cluster
--                       whose xids went back: trades stored now would look seen).
--
-- A rescan (rescan_from, rescan_to; NULL rescan_from: none) reads the trades from the session's
-- start: on a full rescan ($2) up to the watermark and beyond; when the start is earlier than the
-- start the cursor covers (a start moved earlier), up to the old start (rescan_to, exclusive); a
-- cursor that does not record what it covers (from before migration 00013) as a full rescan.
-- $1 session ids, $2 full rescan.
SELECT r.session_id, r.account_scope, r.started_at,
       c.last_trade_time, c.last_symbol, c.last_trade_id,
       CASE WHEN s.discarded IS NULL THEN c.seen_snapshot::text END AS seen_snapshot,
       s.discarded AS snapshot_discarded,
       CASE WHEN $2::boolean OR (c.session_id IS NOT NULL AND r.started_at < coalesce(c.covered_from, 'infinity'))
            THEN r.started_at END AS rescan_from,
       CASE WHEN NOT $2::boolean THEN c.covered_from END AS rescan_to,
       (SELECT array_agg(pm.symbol ORDER BY pm.symbol) FROM cin_aux.session_pending_market pm
         WHERE pm.session_id = r.session_id) AS pending,
       pg_current_snapshot()::text AS snapshot,
       sys.system_identifier AS system_id
  FROM unnest($1::bigint[]) AS h (session_id)
  JOIN cin_aux.rt_session r USING (session_id)
  LEFT JOIN cin_aux.session_import_cursor c USING (session_id)
 CROSS JOIN pg_control_system() sys
 CROSS JOIN LATERAL (
        SELECT CASE WHEN c.seen_snapshot IS NULL THEN NULL
                    WHEN c.seen_system_id IS NULL THEN 'unrecorded_cluster'
                    WHEN c.seen_system_id <> sys.system_identifier THEN 'other_cluster'
                    WHEN pg_snapshot_xmax(c.seen_snapshot) > pg_snapshot_xmax(pg_current_snapshot()) THEN 'ahead_of_cluster'
               END AS discarded) s
 WHERE r.status = 'OPEN'
 ORDER BY r.session_id
