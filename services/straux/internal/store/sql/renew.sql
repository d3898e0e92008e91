-- Extend replica $3's leases on symbols $2 of period $1 by $4 µs.
UPDATE str_aux.tick_claims
   SET lease_until = now() + make_interval(secs => $4::bigint / 1e6)
 WHERE period_start = $1 AND symbol = ANY($2::text[]) AND claimed_by = $3 AND done_at IS NULL
