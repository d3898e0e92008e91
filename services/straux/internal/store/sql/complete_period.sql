-- Close a planned period once no claim is open. Returns whether this call closed it, and its
-- outcome counts (all zero for a period with an empty universe).
WITH closed AS (
    UPDATE str_aux.tick_periods p
       SET status = 'done', completed_at = now()
     WHERE p.period_start = $1 AND p.status = 'planned'
       AND NOT EXISTS (SELECT 1 FROM str_aux.tick_claims c WHERE c.period_start = $1 AND c.done_at IS NULL)
    RETURNING p.period_start
)
SELECT (SELECT count(*) FROM closed) > 0,
       count(*) FILTER (WHERE c.outcome = 'sampled'),
       count(*) FILTER (WHERE c.outcome = 'failed'),
       count(*) FILTER (WHERE c.outcome = 'abandoned')
  FROM closed JOIN str_aux.tick_claims c USING (period_start)
