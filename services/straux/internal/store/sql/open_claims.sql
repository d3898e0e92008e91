-- Open claims of a period: all of them, and those under a live lease.
SELECT count(*), count(*) FILTER (WHERE lease_until >= now())
  FROM str_aux.tick_claims
 WHERE period_start = $1 AND done_at IS NULL
