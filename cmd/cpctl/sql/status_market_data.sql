-- The newest closed straux period's samples by where their books came from: local books (stream),
-- REST depth calls, none because the stream was not live and the REST fallback was not possible
-- (budget spent) or failed (reasons 'stream …'), none because the symbol was not trading; and the
-- sampled books' age p99.
WITH p AS (
    SELECT period_start FROM str_aux.tick_periods WHERE status = 'done' ORDER BY period_start DESC LIMIT 1
)
SELECT p.period_start,
       count(*) FILTER (WHERE s.source = 'stream' AND s.mid IS NOT NULL),
       count(*) FILTER (WHERE s.source = 'rest' AND s.mid IS NOT NULL),
       count(*) FILTER (WHERE s.mid IS NULL AND s.reason LIKE 'stream %'),
       count(*) FILTER (WHERE s.mid IS NULL AND s.reason LIKE 'not\_trading:%'),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY s.book_age_ms)
  FROM p JOIN str_aux.samples s USING (period_start)
 GROUP BY p.period_start
