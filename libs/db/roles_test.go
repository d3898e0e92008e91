package db_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// The roles migration 00016 creates.
const (
	roleOrchestrator = "cp_orchestrator"
	roleStraux       = "cp_straux"
	roleCinimport    = "cp_cinimport"
	roleSeeder       = "cp_seeder"
	roleReadonly     = "cp_readonly"
	roleReplication  = pgtest.ReplicationRole
)

var allRoles = []string{roleOrchestrator, roleStraux, roleCinimport, roleSeeder, roleReadonly, roleReplication}

// tableWriters is the decision for every table and view in the platform's schemas: which roles
// may write it, and how (i insert, u update, d delete). A role not listed may not write it at
// all; nobody but the owner may TRUNCATE. A table missing here fails
// TestEveryTableHasAWriteDecision: a new table gets its GRANTs in its migration and its row here.
var tableWriters = map[string]map[string]string{
	// Operators' and the trader's: written by the owner (cpctl, the app), read by the services.
	"settings.coin_universe": nil,
	"settings.windows":       nil,
	"market.symbols":         nil,
	"cin_aux.rt_session":     nil,

	"market.klines":              {roleStraux: "iu"},
	"market.tickers":             {roleStraux: "iu"},
	"market.orderbook_snapshots": {roleStraux: "iu"},
	"market.kline_cursors":       {roleStraux: "iu"},
	"str_aux.samples":            {roleStraux: "iu"},
	"str_aux.window_stats":       {roleStraux: "iu"},
	"str_aux.window_vectors":     {roleStraux: "iu"},
	"str_aux.matrices":           {roleStraux: "iu"},
	"str_aux.mea":                {roleStraux: "iu"},
	"str_aux.mea_coins":          {roleStraux: "iu"},
	"str_aux.mea_grids":          {roleStraux: "iu"},
	"str_aux.tick_periods":       {roleStraux: "iud"}, // pruned
	"str_aux.tick_claims":        {roleStraux: "iu"},
	"str_aux.backfills":          {roleStraux: "iu"},
	"str_aux.stream_members":     {roleStraux: "iud"}, // a graceful stop deletes its row; old rows are pruned

	"ingest.jobs": {roleStraux: "iud", roleSeeder: "iu"},

	"market.account_trades":          {roleCinimport: "i"}, // stored ON CONFLICT DO NOTHING
	"market.trade_cursors":           {roleCinimport: "iu"},
	"cin_aux.rt_move":                {roleCinimport: "i"},
	"cin_aux.session_import_cursor":  {roleCinimport: "iu"},
	"cin_aux.session_pending_market": {roleCinimport: "id"},

	"ops.session_log":       {roleOrchestrator: "iu", roleStraux: "iu", roleCinimport: "iu", roleSeeder: "iu"},
	"ops.session_flags":     {roleOrchestrator: "iud"},
	"ops.job_run":           {roleStraux: "iud", roleCinimport: "iu", roleSeeder: "iu"},
	"ops.job_pause":         nil, // operators' (cpctl jobs pause, freeze), as the owner
	"ops.goose_db_version":  nil, // migrations, as the owner
	"ops.replication_slots": nil, // a view over pg_replication_slots
}

// platformTables lists every table and view of the six schemas, with its kind (r, p, v, m).
func platformTables(t *testing.T, ctx context.Context, d *pgtest.DB) map[string]string {
	t.Helper()
	rows, err := d.Pool.Query(ctx, `
		SELECT n.nspname || '.' || c.relname, c.relkind::text
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname IN ('settings', 'market', 'str_aux', 'ingest', 'cin_aux', 'ops')
		   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`)
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var name, kind string
		require.NoError(t, rows.Scan(&name, &kind))
		out[name] = kind
	}
	require.NoError(t, rows.Err())
	return out
}

// The rules hold in the decisions themselves, whatever rows are added later.
func TestWriteDecisionsKeepServicesApart(t *testing.T) {
	t.Parallel()
	forbidden := map[string][]string{
		roleStraux:      {"cin_aux."},
		roleCinimport:   {"str_aux.", "ingest."},
		roleSeeder:      {"market."},
		roleReadonly:    {""},
		roleReplication: {""},
	}
	for table, w := range tableWriters {
		for role, prefixes := range forbidden {
			for _, p := range prefixes {
				if strings.HasPrefix(table, p) {
					require.Empty(t, w[role], "%s may not write %s", role, table)
				}
			}
		}
	}
}

func TestEveryTableHasAWriteDecision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	tables := platformTables(t, ctx, d)
	for name := range tables {
		_, ok := tableWriters[name]
		require.True(t, ok, "%s has no decision in tableWriters (roles_test.go): say which roles may write it, and grant it in its migration", name)
	}
	for name := range tableWriters {
		_, ok := tables[name]
		require.True(t, ok, "tableWriters names %s, which no migration creates", name)
	}
}

// TestRolesWriteOnlyWhatTheyMay connects as a login role of each group role and tries every kind
// of write on every table: what tableWriters allows gets past the privilege check (the statements
// are rolled back), everything else is refused with insufficient_privilege. cp_readonly reads
// every table; no role may create a table.
func TestRolesWriteOnlyWhatTheyMay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	tables := platformTables(t, ctx, d)
	// A column each UPDATE can set to its default (not generated), so the statement reads nothing.
	cols := map[string]string{}
	rows, err := d.Pool.Query(ctx, `
		SELECT DISTINCT ON (table_schema, table_name) table_schema || '.' || table_name, column_name
		  FROM information_schema.columns
		 WHERE table_schema IN ('settings', 'market', 'str_aux', 'ingest', 'cin_aux', 'ops') AND is_generated = 'NEVER'
		 ORDER BY table_schema, table_name, ordinal_position`)
	require.NoError(t, err)
	for rows.Next() {
		var tbl, col string
		require.NoError(t, rows.Scan(&tbl, &col))
		cols[tbl] = col
	}
	require.NoError(t, rows.Err())

	for _, role := range allRoles {
		conn, err := pgx.Connect(ctx, d.RoleURL(t, role))
		require.NoError(t, err, role)
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		var isSuper bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&isSuper))
		require.False(t, isSuper, role)

		for table, kind := range tables {
			allowed := tableWriters[table][role]
			s, n, _ := strings.Cut(table, ".")
			ident := pgx.Identifier{s, n}.Sanitize()
			// The grants (a refused statement alone could be refused for another reason, such as a
			// sequence), then the statements themselves.
			for op, priv := range map[string]string{"i": "INSERT", "u": "UPDATE", "d": "DELETE", "t": "TRUNCATE"} {
				var has bool
				require.NoError(t, d.Pool.QueryRow(ctx, `SELECT has_table_privilege($1, $2::regclass, $3)`, role, table, priv).Scan(&has))
				require.Equal(t, strings.Contains(allowed, op), has, "%s %s on %s", role, priv, table)
			}
			if kind != "v" && kind != "m" { // views are not updatable: their grants are what matters
				col := pgx.Identifier{cols[table]}.Sanitize()
				for _, w := range []struct {
					op, sql string
				}{
					{"i", "INSERT INTO " + ident + " DEFAULT VALUES"},
					{"u", "UPDATE " + ident + " SET " + col + " = DEFAULT WHERE false"},
					{"d", "DELETE FROM " + ident + " WHERE false"},
					{"t", "TRUNCATE " + ident},
				} {
					err := attempt(ctx, conn, w.sql)
					refused := isInsufficientPrivilege(err)
					if strings.Contains(allowed, w.op) {
						require.False(t, refused, "%s must be allowed: %s: %v", role, w.sql, err)
					} else {
						require.True(t, refused, "%s must be refused: %s (got %v)", role, w.sql, err)
					}
				}
			}
			if role == roleReadonly {
				require.NoError(t, attempt(ctx, conn, "SELECT 1 FROM "+ident+" LIMIT 0"), "%s reads %s", role, table)
			}
		}
		for _, schema := range []string{"settings", "market", "str_aux", "ingest", "cin_aux", "ops", "public"} {
			err := attempt(ctx, conn, fmt.Sprintf("CREATE TABLE %s.cp_role_probe (x int)", pgx.Identifier{schema}.Sanitize()))
			require.True(t, isInsufficientPrivilege(err), "%s must not create tables in %s (got %v)", role, schema, err)
		}
	}
}

// attempt runs sql in a transaction it rolls back, and returns its error.
func attempt(ctx context.Context, conn *pgx.Conn, sql string) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, sql)
	return err
}

func isInsufficientPrivilege(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// The relay's role has REPLICATION (an attribute, not inherited: it logs in itself) and no other
// attribute; the group roles cannot log in.
func TestRoleAttributes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	type attrs struct {
		Login, Replication, Super, CreateRole, CreateDB, BypassRLS bool
	}
	for _, role := range allRoles {
		var a attrs
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT rolcanlogin, rolreplication, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = $1`, role).
			Scan(&a.Login, &a.Replication, &a.Super, &a.CreateRole, &a.CreateDB, &a.BypassRLS), role)
		want := attrs{}
		if role == roleReplication {
			want = attrs{Login: true, Replication: true}
		}
		require.Equal(t, want, a, role)
	}
	require.True(t, slices.Contains(allRoles, pgtest.ReplicationRole))
}

// A table a later migration creates (as the owner) is readable by cp_readonly without a grant
// of its own, and by no service role until its migration grants it.
func TestReadonlyReadsLaterTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	_, err := d.Pool.Exec(ctx, `CREATE TABLE ops.later_table (x int)`)
	require.NoError(t, err)
	for _, role := range allRoles {
		var can bool
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT has_table_privilege($1, 'ops.later_table', 'SELECT')`, role).Scan(&can))
		require.Equal(t, role == roleReadonly, can, role)
	}
}
