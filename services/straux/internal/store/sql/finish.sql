-- Mark symbols done inside the transaction that writes their rows. Only claims still held by
-- replica $4 are marked: a symbol whose lease ran out and was taken over is left to its new
-- holder, and its rows are not written by this replica. Returns the symbols marked.
UPDATE str_aux.tick_claims t
   SET done_at = now(), done_by = $4, outcome = u.outcome, lease_until = NULL
  FROM unnest($2::text[], $3::text[]) AS u(symbol, outcome)
 WHERE t.period_start = $1 AND t.symbol = u.symbol AND t.claimed_by = $4 AND t.done_at IS NULL
RETURNING t.symbol
