-- ops.replication_slots: every replication slot and the WAL it holds back, read from Postgres
-- itself. A slot nobody reads (the orchestrator off with RUN_JOBS, or down) keeps WAL until
-- max_slot_wal_keep_size invalidates it (wal_status 'lost') or the disk fills; this view is what
-- the seeder exports as cp_postgres_replication_slot_* metrics and what operators query.

-- +goose Up

CREATE VIEW ops.replication_slots AS
WITH pos AS (
    -- On a standby there is no current WAL insert position: the replayed one stands in.
    SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn
)
SELECT s.slot_name                                                  AS slot,
       s.slot_type,
       s.plugin,
       s.database,
       s.active,
       s.active_pid,
       s.wal_status,                                                -- reserved | extended | unreserved | lost
       pg_wal_lsn_diff(pos.lsn, s.restart_lsn)::bigint              AS retained_bytes,
       s.safe_wal_size                                              AS safe_wal_bytes,
       pg_wal_lsn_diff(pos.lsn, s.confirmed_flush_lsn)::bigint      AS confirmed_lag_bytes
  FROM pg_replication_slots s CROSS JOIN pos;

COMMENT ON VIEW ops.replication_slots IS
    'Replication slots and the WAL they retain: retained_bytes = current WAL position - restart_lsn (NULL once lost), safe_wal_bytes = what may still be written before the slot is lost (NULL without max_slot_wal_keep_size), confirmed_lag_bytes = current position - confirmed_flush_lsn.';

-- +goose Down
DROP VIEW ops.replication_slots;
