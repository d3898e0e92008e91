package db_test

import (
	"context"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// embeddedVersions lists the versions of the embedded migration files, ascending.
func embeddedVersions(t *testing.T) []int64 {
	t.Helper()
	names, err := fs.Glob(db.Migrations(), "*.sql")
	require.NoError(t, err)
	var out []int64
	for _, n := range names {
		v, err := strconv.ParseInt(strings.SplitN(path.Base(n), "_", 2)[0], 10, 64)
		require.NoError(t, err, n)
		out = append(out, v)
	}
	return out
}

// gooseProvider opens a goose Provider on url, configured as db.MigrateUp configures its own.
func gooseProvider(t *testing.T, url string) *goose.Provider {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	sqlDB := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { sqlDB.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations(),
		goose.WithTableName("ops.goose_db_version"))
	require.NoError(t, err)
	return p
}

// schemaSnapshot describes every object the migrations own in the application schemas: columns,
// constraints, indexes, triggers, functions and replica identities. Two equal snapshots mean the
// same schema.
func schemaSnapshot(t *testing.T, ctx context.Context, url string) []string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `
		WITH app AS (
		    SELECT oid, nspname FROM pg_namespace
		     WHERE nspname IN ('settings', 'market', 'str_aux', 'ingest', 'cin_aux', 'ops')
		), rel AS (
		    SELECT c.oid, app.nspname || '.' || c.relname AS name, c.relreplident
		      FROM pg_class c JOIN app ON app.oid = c.relnamespace
		     WHERE c.relkind = 'r' AND c.relname <> 'goose_db_version'
		)
		SELECT 'column ' || rel.name || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
		       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
		  FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
		  LEFT JOIN pg_attrdef d ON d.adrelid = rel.oid AND d.adnum = a.attnum
		UNION ALL
		SELECT 'constraint ' || rel.name || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
		  FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid
		UNION ALL
		SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM rel JOIN pg_index i ON i.indrelid = rel.oid
		UNION ALL
		SELECT 'trigger ' || pg_get_triggerdef(tg.oid) FROM rel JOIN pg_trigger tg ON tg.tgrelid = rel.oid
		 WHERE NOT tg.tgisinternal
		UNION ALL
		SELECT 'replica identity ' || rel.name || ' ' || rel.relreplident::text FROM rel
		UNION ALL
		SELECT 'function ' || app.nspname || '.' || p.proname || '(' || pg_get_function_arguments(p.oid) || ')'
		  FROM pg_proc p JOIN app ON app.oid = p.pronamespace
		 ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func TestMigrateUpOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewEmptyDB(t)

	applied, err := db.MigrateUp(ctx, d.URL)
	require.NoError(t, err)
	require.Equal(t, embeddedVersions(t), applied)

	status, err := db.MigrateStatus(ctx, d.URL)
	require.NoError(t, err)
	require.Len(t, status, len(applied))
	for i, s := range status {
		require.Equal(t, applied[i], s.Version)
		require.True(t, s.Applied, "migration %s not applied", s.Source)
	}

	again, err := db.MigrateUp(ctx, d.URL)
	require.NoError(t, err)
	require.Empty(t, again, "a second up applies nothing")
}

// Every Down reverses its Up: after going down and up again the schema is the one a single up gives.
// Schema ops outlives DownTo(0): it holds goose's own version table.
func TestMigrationsDownAndUpAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewEmptyDB(t)
	_, err := db.MigrateUp(ctx, d.URL)
	require.NoError(t, err)
	want := schemaSnapshot(t, ctx, d.URL)
	require.NotEmpty(t, want)

	p := gooseProvider(t, d.URL)
	down, err := p.DownTo(ctx, 0)
	require.NoError(t, err)
	require.Len(t, down, len(embeddedVersions(t)))
	require.Empty(t, schemaSnapshot(t, ctx, d.URL), "down to 0 leaves no tables")
	v, err := p.GetDBVersion(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 0, v)
	var schemas int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname IN ('settings','market','str_aux','ingest','cin_aux')`).Scan(&schemas))
	require.Zero(t, schemas)

	_, err = db.MigrateUp(ctx, d.URL)
	require.NoError(t, err)
	require.Equal(t, want, schemaSnapshot(t, ctx, d.URL))

	var windows int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM settings.windows`).Scan(&windows))
	require.Equal(t, 3, windows, "default windows are back after up again")
}

func TestMigrateStatusOnMigratedDatabase(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	status, err := db.MigrateStatus(context.Background(), d.URL)
	require.NoError(t, err)
	require.Len(t, status, len(embeddedVersions(t)))
	for _, s := range status {
		require.True(t, s.Applied, "migration %s not applied", s.Source)
	}
}
