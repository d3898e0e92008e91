-- Order-book snapshots as fetched, one per (symbol, ts).
INSERT INTO market.orderbook_snapshots (symbol, ts, last_update_id, depth_limit, bids, asks, fetched_at)
SELECT u.symbol, $1, u.id, $2, u.bids::jsonb, u.asks::jsonb, now()
  FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[]) AS u(symbol, id, bids, asks)
ON CONFLICT (symbol, ts) DO UPDATE SET
    last_update_id = EXCLUDED.last_update_id, depth_limit = EXCLUDED.depth_limit,
    bids = EXCLUDED.bids, asks = EXCLUDED.asks, fetched_at = EXCLUDED.fetched_at
