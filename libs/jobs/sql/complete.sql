-- Records a batch of outcomes of worker $5's jobs in one statement, and returns the ids each
-- outcome applied to. Per job: $1 id, $2 outcome, $3 retry delay in µs, $4 error ('' for none),
-- $6 the attempt count its claim returned.
--   succeeded  one-shot: done. Periodic: back to queued at the next period boundary after now,
--              aligned to its schedule (missed periods are skipped, not run in a burst).
--   retry      back to queued after the delay, error kept.
--   failed     done, error kept.
--   release    back to queued now, the claim not counted as an attempt (the handler never ran or
--              was interrupted by shutdown).
-- The caller sorts $1 by id, so rows are locked in id order (the nested loop over unnest keeps
-- it), as Cancel locks them: the two cannot deadlock.
-- Only rows still running under this worker for the same claim change: a job cancelled or rescued
-- meanwhile is no longer ours, and its late outcome is dropped (the caller counts those as stale),
-- even when this worker has claimed it again since (the attempt count tells the claims apart).
WITH recorded AS (
    UPDATE ingest.jobs AS j
       SET status = CASE
               WHEN u.outcome = 'succeeded' AND j.period IS NULL THEN 'succeeded'
               WHEN u.outcome = 'failed' THEN 'failed'
               ELSE 'queued'
           END,
           attempts = CASE
               WHEN u.outcome = 'succeeded' THEN CASE WHEN j.period IS NULL THEN j.attempts ELSE 0 END
               WHEN u.outcome = 'release' THEN greatest(j.attempts - 1, 0)
               ELSE j.attempts
           END,
           scheduled_for = CASE
               WHEN u.outcome = 'succeeded' AND j.period IS NOT NULL THEN
                   j.scheduled_for + j.period * (floor(extract(epoch FROM now() - j.scheduled_for)
                                                       / extract(epoch FROM j.period)) + 1)
               WHEN u.outcome = 'retry' THEN now() + u.delay_us * interval '1 microsecond'
               WHEN u.outcome = 'release' THEN now()
               ELSE j.scheduled_for
           END,
           finished_at      = CASE WHEN u.outcome = 'release' THEN j.finished_at ELSE now() END,
           error            = CASE u.outcome WHEN 'succeeded' THEN NULL WHEN 'release' THEN j.error ELSE nullif(u.error, '') END,
           locked_by        = NULL,
           lease_expires_at = NULL,
           updated_at       = now()
      FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $6::integer[]) AS u (id, outcome, delay_us, error, attempt)
     WHERE j.id = u.id AND j.status = 'running' AND j.locked_by = $5 AND j.attempts = u.attempt
    RETURNING u.id, u.outcome
)
SELECT outcome, array_agg(id) FROM recorded GROUP BY outcome
