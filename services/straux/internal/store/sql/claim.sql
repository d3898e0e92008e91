-- Claim up to $3 open symbols of period $1 for replica $2 with a lease of $4 µs: unclaimed ones
-- and those whose lease ran out (their replica died or stalled). SKIP LOCKED lets replicas claim
-- side by side without waiting on each other. The database clock times every lease. With $5 (not
-- NULL) only those symbols are claimed: a replica in stream mode first claims the symbols whose
-- local books it holds. The list is matched through a hashed subplan: `symbol = ANY ($5)` walks the
-- whole array for every open claim under a cached generic plan (2,000 × 2,000 in a tick).
WITH pick AS (
    SELECT period_start, symbol
      FROM str_aux.tick_claims
     WHERE period_start = $1
       AND done_at IS NULL
       AND (lease_until IS NULL OR lease_until < now())
       AND ($5::text[] IS NULL OR symbol IN (SELECT unnest($5::text[])))
     ORDER BY symbol
     LIMIT $3
       FOR UPDATE SKIP LOCKED
)
UPDATE str_aux.tick_claims t
   SET claimed_by = $2, lease_until = now() + make_interval(secs => $4::bigint / 1e6), attempts = t.attempts + 1
  FROM pick
 WHERE t.period_start = pick.period_start AND t.symbol = pick.symbol
RETURNING t.symbol, t.attempts
