-- Postgres roles per service (docs/security.md#postgres): every service connects as a login role
-- that is a member of its group role below, and may read and write only what its own SQL does.
-- Migrations run as the schema owner, which keeps every other right (DDL, TRUNCATE, operators'
-- repairs).
--
--   cp_orchestrator  the universe watcher and the freeze mirror (ops.session_flags)
--   cp_straux        market data and str_aux, and the job table it works
--   cp_cinimport     account trades and their cursors, cin_aux session moves
--   cp_seeder        the job table, from the universe and the windows
--   cp_readonly      operators' status queries: SELECT on everything in the six schemas
--   cp_replication   the change relay: REPLICATION LOGIN, no table rights (pgoutput reads WAL,
--                    not tables); its publication is created here, as the owner of its tables
--
-- The group roles are NOLOGIN: a deployment grants them to login roles (CREATE ROLE straux_a
-- LOGIN PASSWORD '…' IN ROLE cp_straux), so a password is rotated by adding a second login role
-- or ALTER ROLE … PASSWORD without touching grants. REPLICATION is a role attribute, which
-- membership does not pass on: the relay logs in as cp_replication itself (ALTER ROLE
-- cp_replication PASSWORD '…'), or as another role with REPLICATION.
--
-- Roles are cluster-wide: they are created only when missing, and another database of the
-- cluster may already have made them. Creating them needs CREATEROLE, and cp_replication (a
-- REPLICATION role) a superuser on PostgreSQL 15: an owner without that can have a superuser
-- create the roles first (the statements below, by hand) and run the migration after.
--
-- A new table: the migration that creates it adds its GRANTs for the roles that read or write
-- it (cp_readonly gets SELECT by the default privileges below) and its row in the table of
-- decisions in libs/db/roles_test.go, which fails for any table without one.

-- +goose Up

-- +goose StatementBegin
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
        ('cp_orchestrator', 'NOLOGIN'),
        ('cp_straux',       'NOLOGIN'),
        ('cp_cinimport',    'NOLOGIN'),
        ('cp_seeder',       'NOLOGIN'),
        ('cp_readonly',     'NOLOGIN'),
        ('cp_replication',  'LOGIN REPLICATION')) AS v (name, attrs)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I %s', r.name, r.attrs);
            EXCEPTION
                WHEN duplicate_object THEN NULL; -- another database's migration made it meanwhile
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role % is missing and % may not create it', r.name, current_user
                        USING HINT = format('create it as a superuser (CREATE ROLE %I %s) and migrate again', r.name, r.attrs);
            END;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- Every service: the schema check at start (goose's version table), its ops.session_log stamp
-- (UPDATE: the stamp's last_seen_at and stopped_at).
GRANT USAGE ON SCHEMA ops TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;
GRANT SELECT ON ops.goose_db_version TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;
GRANT SELECT, INSERT, UPDATE ON ops.session_log TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;
GRANT USAGE ON SEQUENCE ops.session_log_id_seq TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;
GRANT USAGE ON SCHEMA settings TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;
GRANT SELECT ON settings.coin_universe TO cp_orchestrator, cp_straux, cp_cinimport, cp_seeder;

-- orchestrator: the universe (above); the freeze flags it mirrors from CP_FLAGS.
GRANT SELECT, INSERT, UPDATE, DELETE ON ops.session_flags TO cp_orchestrator;

-- straux: samples the market and computes str_aux; works the market job kinds (libs/jobs: claim,
-- complete, retry, rescue; failed occurrences are rows of their own, hence INSERT).
GRANT SELECT ON settings.windows TO cp_straux;
GRANT USAGE ON SCHEMA market, str_aux, ingest TO cp_straux;
GRANT SELECT, INSERT, UPDATE ON
    market.klines, market.tickers, market.orderbook_snapshots, market.kline_cursors,
    str_aux.samples, str_aux.window_stats, str_aux.window_vectors, str_aux.matrices,
    str_aux.mea, str_aux.mea_coins, str_aux.mea_grids, str_aux.tick_claims, str_aux.backfills
    TO cp_straux;
-- Old periods are pruned (their claims go with them, ON DELETE CASCADE).
GRANT SELECT, INSERT, UPDATE, DELETE ON str_aux.tick_periods TO cp_straux;
GRANT SELECT, INSERT, UPDATE ON ingest.jobs TO cp_straux;
GRANT USAGE ON SEQUENCE ingest.jobs_id_seq TO cp_straux;

-- cinimport: syncs account trades (and their cursors), imports them into session moves, priced
-- from market data it only reads; sessions are the trader's, read only.
GRANT USAGE ON SCHEMA market, cin_aux TO cp_cinimport;
GRANT SELECT ON market.symbols, market.tickers, market.klines, cin_aux.rt_session TO cp_cinimport;
-- Trades are stored ON CONFLICT DO NOTHING: never updated.
GRANT SELECT, INSERT ON market.account_trades TO cp_cinimport;
GRANT SELECT, INSERT, UPDATE ON market.trade_cursors TO cp_cinimport;
GRANT SELECT, INSERT ON cin_aux.rt_move TO cp_cinimport;
GRANT USAGE ON SEQUENCE cin_aux.rt_move_move_id_seq TO cp_cinimport;
GRANT SELECT, INSERT, UPDATE ON cin_aux.session_import_cursor TO cp_cinimport;
GRANT SELECT, INSERT, DELETE ON cin_aux.session_pending_market TO cp_cinimport;

-- seeder: keeps ingest.jobs in step with the universe (enqueue, cancel stale kline jobs);
-- exports every replication slot's retained WAL.
GRANT SELECT ON settings.windows TO cp_seeder;
GRANT USAGE ON SCHEMA ingest TO cp_seeder;
GRANT SELECT, INSERT, UPDATE ON ingest.jobs TO cp_seeder;
GRANT USAGE ON SEQUENCE ingest.jobs_id_seq TO cp_seeder;
GRANT SELECT ON ops.replication_slots TO cp_seeder;

-- The job engine (straux) and the one-shot runs (cinimport once, seeder once): every run is a
-- row of ops.job_run (00015); the engine skips paused kinds (ops.job_pause) and prunes finished
-- jobs and runs past JOBS_RETENTION.
GRANT SELECT, INSERT, UPDATE, DELETE ON ops.job_run TO cp_straux;
GRANT SELECT, INSERT, UPDATE ON ops.job_run TO cp_cinimport, cp_seeder;
GRANT USAGE ON SEQUENCE ops.job_run_id_seq TO cp_straux, cp_cinimport, cp_seeder;
GRANT SELECT ON ops.job_pause TO cp_straux;
GRANT DELETE ON ingest.jobs TO cp_straux;

-- cp_readonly: reads everything in the platform's schemas, tables created later included (the
-- default privileges of the role that runs migrations), and writes nothing.
GRANT USAGE ON SCHEMA settings, market, str_aux, ingest, cin_aux, ops TO cp_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA settings, market, str_aux, ingest, cin_aux, ops TO cp_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA settings, market, str_aux, ingest, cin_aux, ops GRANT SELECT ON TABLES TO cp_readonly;

-- cp_replication: the relay's publication, created here because creating or altering one needs
-- the ownership of its tables, which the relay's role does not have. It is the relay's default
-- (CDC_PUBLICATION, CDC_TABLES); a relay configured otherwise needs its publication made by the
-- owner. Left alone when it exists (a relay that ran as the owner may have made it).
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cp_cdc') THEN
        CREATE PUBLICATION cp_cdc FOR TABLE settings.coin_universe, cin_aux.rt_session, market.account_trades;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The roles stay: they are cluster-wide and other databases may use them. Their rights in this
-- database go.
ALTER DEFAULT PRIVILEGES IN SCHEMA settings, market, str_aux, ingest, cin_aux, ops REVOKE SELECT ON TABLES FROM cp_readonly;
REVOKE ALL ON ALL TABLES IN SCHEMA settings, market, str_aux, ingest, cin_aux, ops
    FROM cp_orchestrator, cp_straux, cp_cinimport, cp_seeder, cp_readonly, cp_replication;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA settings, market, str_aux, ingest, cin_aux, ops
    FROM cp_orchestrator, cp_straux, cp_cinimport, cp_seeder, cp_readonly, cp_replication;
REVOKE ALL ON SCHEMA settings, market, str_aux, ingest, cin_aux, ops
    FROM cp_orchestrator, cp_straux, cp_cinimport, cp_seeder, cp_readonly, cp_replication;
DROP PUBLICATION IF EXISTS cp_cdc;
