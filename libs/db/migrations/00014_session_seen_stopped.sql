-- Session stamps say when a process was last seen and when it stopped, so `cpctl status` can tell
-- a running replica from one that crashed (no heartbeat for three intervals, never stopped: lost).

-- +goose Up

-- last_seen_at: the process's newest heartbeat (libs/service, every heartbeat_every); NULL until
-- the first one. stopped_at: set by a clean stop (the service frame returning); NULL while running
-- and after a crash.
ALTER TABLE ops.session_log
    ADD COLUMN last_seen_at    timestamptz,
    ADD COLUMN stopped_at      timestamptz,
    ADD COLUMN heartbeat_every interval,
    ADD CONSTRAINT session_log_heartbeat_positive CHECK (heartbeat_every IS NULL OR heartbeat_every > interval '0');

-- Status reads the sessions still running (or lost): the ones without stopped_at.
CREATE INDEX session_log_running_idx ON ops.session_log (service, started_at DESC) WHERE stopped_at IS NULL;

-- +goose Down
DROP INDEX ops.session_log_running_idx;
ALTER TABLE ops.session_log
    DROP CONSTRAINT session_log_heartbeat_positive,
    DROP COLUMN heartbeat_every,
    DROP COLUMN stopped_at,
    DROP COLUMN last_seen_at;
