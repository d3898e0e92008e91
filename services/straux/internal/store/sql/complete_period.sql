-- Close a planned period once no claim is open. Returns whether this call closed it, and its
-- outcome counts (all zero for a period with an empty universe) and the universe it was planned on.
WITH closed AS (
    UPDATE str_aux.tick_periods p
       SET status = 'done', completed_at = now()
     WHERE p.period_start = $1 AND p.status = 'planned'
       AND NOT EXISTS (SELECT 1 FROM str_aux.tick_claims c WHERE c.period_start = $1 AND c.done_at IS NULL)
    RETURNING p.period_start, p.universe_size, p.planned_symbols
)
SELECT (SELECT count(*) FROM closed) > 0,
       count(*) FILTER (WHERE c.outcome = 'sampled'),
       count(*) FILTER (WHERE c.outcome = 'failed'),
       count(*) FILTER (WHERE c.outcome = 'abandoned'),
       coalesce(max(closed.universe_size), 0), coalesce(max(closed.planned_symbols), 0)
  FROM closed LEFT JOIN str_aux.tick_claims c USING (period_start)
