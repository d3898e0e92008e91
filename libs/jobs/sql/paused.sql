-- Every pause, by kind and source.
SELECT kind, source, reason, paused_at, paused_by FROM ops.job_pause ORDER BY kind, source
