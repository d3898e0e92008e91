-- Hand replica $3's unfinished claims on symbols $2 of period $1 back at once (after an error),
-- instead of letting their leases run out.
UPDATE str_aux.tick_claims
   SET claimed_by = NULL, lease_until = NULL
 WHERE period_start = $1 AND symbol = ANY($2::text[]) AND claimed_by = $3 AND done_at IS NULL
