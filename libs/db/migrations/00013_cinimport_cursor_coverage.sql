-- cinimport's cursor says what its snapshot and its watermark cover, so that an import can tell
-- when they no longer do.

-- +goose Up

-- covered_from: the session start the cursor's imports ran with; every trade of the session from
-- there to the watermark has been imported. A start moved earlier than it (started_at <
-- covered_from) is rescanned from the new start up to it by the next import, whatever triggered
-- that import: no row-change event is needed. NULL (cursors from before this column): the next
-- import rescans from the session's start once.
ALTER TABLE cin_aux.session_import_cursor ADD COLUMN covered_from timestamptz;

-- seen_system_id: the system identifier (pg_control_system()) of the cluster seen_snapshot was
-- taken in. Transaction ids are per cluster: after a dump and restore into another cluster new
-- xids start lower than the stored snapshot's, which would pass over every trade stored until
-- they catch up. A snapshot of another cluster, or one NULL here (from before this column), is
-- treated as none: the next import looks at every trade once, checked.
ALTER TABLE cin_aux.session_import_cursor ADD COLUMN seen_system_id bigint;

-- +goose Down
ALTER TABLE cin_aux.session_import_cursor DROP COLUMN seen_system_id, DROP COLUMN covered_from;
