-- Recovers jobs whose lease ran out (their worker died or lost the database): back to queued
-- now, or, when the claim that was lost was their last attempt, failed (one-shot) or, for a
-- periodic job, recorded as a failed occurrence and queued for its next period, as complete.sql
-- does. SKIP LOCKED: a locked row is being completed or cancelled by someone else right now.
-- Returns per job its id, kind, key, what became of it (queued, failed) and its consecutive
-- failures.
WITH expired AS (
    SELECT id, attempts >= max_attempts AS last, scheduled_for AS due, attempts
      FROM ingest.jobs
     WHERE status = 'running' AND lease_expires_at < now()
       FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE ingest.jobs AS j
       SET status           = CASE WHEN e.last AND j.period IS NULL THEN 'failed' ELSE 'queued' END,
           attempts         = CASE WHEN e.last AND j.period IS NOT NULL THEN 0 ELSE j.attempts END,
           scheduled_for    = CASE
               WHEN e.last AND j.period IS NOT NULL THEN
                   coalesce(j.period_anchor, j.scheduled_for)
                   + j.period * (floor(extract(epoch FROM now() - coalesce(j.period_anchor, j.scheduled_for))
                                       / extract(epoch FROM j.period)) + 1)
               ELSE now()
           END,
           period_anchor    = CASE
               WHEN j.period IS NULL THEN NULL
               WHEN e.last THEN
                   coalesce(j.period_anchor, j.scheduled_for)
                   + j.period * (floor(extract(epoch FROM now() - coalesce(j.period_anchor, j.scheduled_for))
                                       / extract(epoch FROM j.period)) + 1)
               ELSE coalesce(j.period_anchor, j.scheduled_for)
           END,
           consecutive_failures = CASE WHEN e.last AND j.period IS NOT NULL THEN j.consecutive_failures + 1
                                       ELSE j.consecutive_failures END,
           last_failed_at   = CASE WHEN e.last THEN now() ELSE j.last_failed_at END,
           finished_at      = CASE WHEN e.last THEN now() ELSE j.finished_at END,
           error            = 'lease expired on worker ' || j.locked_by,
           locked_by        = NULL,
           lease_expires_at = NULL,
           updated_at       = now()
      FROM expired e
     WHERE j.id = e.id
    RETURNING j.id, j.kind, j.dedup_key, j.payload, j.max_attempts, j.started_at, j.error,
              j.period IS NOT NULL AS periodic, j.consecutive_failures, e.last, e.due, e.attempts
), occurrences AS (
    INSERT INTO ingest.jobs (kind, dedup_key, payload, status, attempts, max_attempts, scheduled_for,
                             started_at, finished_at, last_failed_at, error, occurrence_of)
    SELECT r.kind, r.dedup_key, r.payload, 'failed', r.attempts, r.max_attempts, r.due,
           r.started_at, now(), now(), r.error, r.id
      FROM rescued r
     WHERE r.last AND r.periodic
)
SELECT id, kind, dedup_key, CASE WHEN last THEN 'failed' ELSE 'queued' END, consecutive_failures
  FROM rescued
