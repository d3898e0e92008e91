-- Records a batch of outcomes of worker $5's jobs in one statement, and returns, per outcome, the
-- ids it applied to and those jobs' consecutive failures. Per job: $1 id, $2 outcome, $3 retry
-- delay in µs, $4 error ('' for none), $6 the attempt count its claim returned, $7 the
-- scheduled_for its claim returned.
--   succeeded  one-shot: done. Periodic: back to queued at the next period boundary after now,
--              on its grid (period_anchor: the occurrence's due time, which retries do not move;
--              missed periods are skipped, not run in a burst); its consecutive failures reset.
--   retry      back to queued after the delay, error kept.
--   failed     one-shot: done, error kept. Periodic: the occurrence is recorded as a failed row
--              of its own (occurrence_of: the job), and the job itself is queued for its next
--              period as after a success, its attempts reset, the error kept and its consecutive
--              failures counted: a recurring job outlives a bad spell of its exchange.
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
               WHEN j.period IS NOT NULL AND u.outcome <> 'release' THEN 'queued'
               WHEN u.outcome = 'succeeded' THEN 'succeeded'
               WHEN u.outcome = 'failed' THEN 'failed'
               ELSE 'queued'
           END,
           attempts = CASE
               WHEN u.outcome IN ('succeeded', 'failed') THEN CASE WHEN j.period IS NULL THEN j.attempts ELSE 0 END
               WHEN u.outcome = 'release' THEN greatest(j.attempts - 1, 0)
               ELSE j.attempts
           END,
           scheduled_for = CASE
               WHEN u.outcome IN ('succeeded', 'failed') AND j.period IS NOT NULL THEN
                   coalesce(j.period_anchor, j.scheduled_for)
                   + j.period * (floor(extract(epoch FROM now() - coalesce(j.period_anchor, j.scheduled_for))
                                       / extract(epoch FROM j.period)) + 1)
               WHEN u.outcome = 'retry' THEN now() + u.delay_us * interval '1 microsecond'
               WHEN u.outcome = 'release' THEN now()
               ELSE j.scheduled_for
           END,
           period_anchor = CASE
               WHEN j.period IS NULL THEN NULL
               WHEN u.outcome IN ('succeeded', 'failed') THEN
                   coalesce(j.period_anchor, j.scheduled_for)
                   + j.period * (floor(extract(epoch FROM now() - coalesce(j.period_anchor, j.scheduled_for))
                                       / extract(epoch FROM j.period)) + 1)
               ELSE coalesce(j.period_anchor, j.scheduled_for)
           END,
           consecutive_failures = CASE
               WHEN u.outcome = 'succeeded' THEN 0
               WHEN u.outcome = 'failed' AND j.period IS NOT NULL THEN j.consecutive_failures + 1
               ELSE j.consecutive_failures
           END,
           last_failed_at   = CASE WHEN u.outcome = 'failed' THEN now() ELSE j.last_failed_at END,
           finished_at      = CASE WHEN u.outcome = 'release' THEN j.finished_at ELSE now() END,
           error            = CASE u.outcome WHEN 'succeeded' THEN NULL WHEN 'release' THEN j.error ELSE nullif(u.error, '') END,
           locked_by        = NULL,
           lease_expires_at = NULL,
           updated_at       = now()
      FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $6::integer[], $7::timestamptz[])
           AS u (id, outcome, delay_us, error, attempt, due)
     WHERE j.id = u.id AND j.status = 'running' AND j.locked_by = $5 AND j.attempts = u.attempt
    RETURNING u.id, u.outcome, u.attempt, u.due, u.error, j.period IS NOT NULL AS periodic,
              j.kind, j.dedup_key, j.payload, j.max_attempts, j.started_at, j.consecutive_failures
), occurrences AS (
    INSERT INTO ingest.jobs (kind, dedup_key, payload, status, attempts, max_attempts, scheduled_for,
                             started_at, finished_at, last_failed_at, error, occurrence_of)
    SELECT r.kind, r.dedup_key, r.payload, 'failed', r.attempt, r.max_attempts, r.due,
           r.started_at, now(), now(), nullif(r.error, ''), r.id
      FROM recorded r
     WHERE r.outcome = 'failed' AND r.periodic
)
SELECT outcome, array_agg(id ORDER BY id), array_agg(consecutive_failures ORDER BY id)
  FROM recorded
 GROUP BY outcome
