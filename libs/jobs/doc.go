// Package jobs is the job engine over ingest.jobs: the table of market-data work the seeder fills
// and the services work down.
//
// Producers call [Enqueue] or [EnqueueMany] (inside their own transaction if they like). A job is
// identified by its kind and a dedup key; enqueueing work that is already queued or running is a
// no-op, so re-seeding never duplicates work. [CancelMatching] withdraws live jobs by kind, key or
// payload.
//
// Workers run an [Engine]: [Engine.Register] a [Handler] per kind, [Engine.Start], and
// [Engine.Stop] at shutdown. The engine claims due jobs in batches (one UPDATE … FOR UPDATE SKIP
// LOCKED … RETURNING), runs their handlers with bounded concurrency, and records outcomes in
// batches from an asynchronous completer:
//
//   - success: one-shot jobs are done; periodic jobs go back to the queue for their next period;
//   - error: retried after a capped exponential backoff with jitter, until the job's attempts are
//     used up; then the job is failed with the error (at once for [Permanent] errors);
//   - no handler: jobs of kinds an engine has no handler for are never claimed by it.
//
// A periodic job never dies of a bad spell: when an occurrence runs out of attempts (or its
// worker dies on the last one), the occurrence is recorded as a failed row of its own
// (occurrence_of names the job, with its attempts and error), and the job is queued for its next
// period on its grid with a fresh attempt budget, keeping its live key (re-seeding stays a
// no-op). The job row counts its consecutive failed occurrences (consecutive_failures,
// last_failed_at, the last error), reset by a success; the engine exports per kind the failed jobs
// since the kind's last success (cp_jobs_consecutive_failures) and warns when that, or a job's
// own count, reaches Config.FailureWarnAfter. [Failing] lists the recurring jobs failing now.
//
// A claimed job is leased to its worker, which renews the lease while it holds the job. Jobs left
// running by a dead worker are rescued by any live engine once their lease has expired.
//
// Engines never busy-poll. They sleep until a notification on the ingest_jobs channel (sent by the
// table's insert trigger), an explicit [Engine.Wake] (services call it on tick events), the next
// scheduled_for they know of, or a slow fallback poll.
//
// Operators (cpctl jobs, the web console) act through [Retry], [RetryFailed], [Cancel] (a running
// job's handler context is cancelled in whichever engine holds it: a notification on the
// ingest_jobs_cancel channel, with a check at every lease renewal as the fallback), [Pause] and
// [Resume] (ops.job_pause: no engine claims a paused kind; [PauseFor] / [ResumeFor] pause on behalf
// of a freeze flag, so an unfreeze lifts exactly its own pauses) and [Prune]. Every handler run is
// recorded in ops.job_run, as are one-shot commands ([RunOneShot]); engines prune finished jobs
// and runs past Config.Retention on their own.
//
// An engine uses up to three connections of its pool at a time (claiming, recording outcomes,
// lease upkeep) plus one dedicated connection for LISTEN; size the pool for the handlers on top.
package jobs
