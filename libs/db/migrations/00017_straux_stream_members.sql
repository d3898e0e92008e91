-- str_aux.stream_members: the straux replicas that share the universe's websocket streams
-- (services/straux/internal/members). Each live replica heartbeats its row; a symbol's stream is
-- held by the live member that rendezvous hashing picks for it. Liveness is judged by the
-- database's clock (expires_at > now()), so hosts' clocks never disagree about who is alive.

-- +goose Up

CREATE TABLE str_aux.stream_members (
    -- The replica's name (STRAUX_REPLICA): one row per replica, upserted by its heartbeat.
    replica    text        PRIMARY KEY,
    -- When this run of the replica became a member: its first heartbeat after its row was absent
    -- or expired (a rejoin after an outage starts again).
    joined_at  timestamptz NOT NULL DEFAULT now(),
    -- The last successful heartbeat, in database time.
    seen_at    timestamptz NOT NULL DEFAULT now(),
    -- seen_at + the replica's TTL: the replica is a live member while expires_at > now(). A row
    -- expired long ago is pruned by the live members; a graceful stop deletes its own row.
    expires_at timestamptz NOT NULL,
    -- Where the replica runs (os.Hostname) and its process id, for operators; two processes
    -- heartbeating one replica name show up as host or pid changing between heartbeats.
    host       text        NOT NULL DEFAULT '',
    pid        integer     NOT NULL DEFAULT 0,
    -- ops.session_log id of the process, when it stamped one; no foreign key, sessions are pruned.
    session_id bigint,
    -- Streams (symbols) the replica holds, as of its last heartbeat (cpctl status).
    streams    integer     NOT NULL DEFAULT 0,
    CONSTRAINT stream_members_replica_named CHECK (replica <> ''),
    CONSTRAINT stream_members_streams_nonnegative CHECK (streams >= 0),
    CONSTRAINT stream_members_expires_after_seen CHECK (expires_at > seen_at)
);
COMMENT ON TABLE str_aux.stream_members IS 'straux replicas sharing the websocket streams: live while expires_at > now() (heartbeats, services/straux/internal/members).';

-- straux heartbeats, reads the live set, deletes its own row on a graceful stop and prunes rows
-- expired long ago. cp_readonly reads it by 00016's default privileges; granted here too, so the
-- table is readable whoever ran this migration.
GRANT SELECT, INSERT, UPDATE, DELETE ON str_aux.stream_members TO cp_straux;
GRANT SELECT ON str_aux.stream_members TO cp_readonly;

-- +goose Down
DROP TABLE str_aux.stream_members;
