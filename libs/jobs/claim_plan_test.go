package jobs

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// The claim must walk jobs_due in order and stop after its batch, even on a freshly loaded table
// without statistics, where the planner would otherwise sort every due row (see ordered_scan.sql).
func TestClaimWalksTheDueIndexWithoutStatistics(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	ctx := context.Background()
	_, err := d.Pool.Exec(ctx, `INSERT INTO ingest.jobs (kind, dedup_key)
		SELECT 'fetch_ticker', 'k' || g FROM generate_series(1, 20000) g`)
	require.NoError(t, err)
	var analyzed bool
	require.NoError(t, d.Pool.QueryRow(ctx,
		`SELECT reltuples >= 0 FROM pg_class WHERE oid = 'ingest.jobs'::regclass`).Scan(&analyzed))
	require.False(t, analyzed, "the test needs a table without statistics")

	r := &run{e: &Engine{pool: d.Pool}}
	for _, q := range []struct {
		name string
		sql  string
		args []any
	}{
		{"claim", claimSQL, []any{[]string{"fetch_ticker"}, 1000, "w", int64(30e6)}},
		{"next due", nextDueSQL, []any{[]string{"fetch_ticker"}}},
	} {
		var plan []string
		err := r.inOrderedScan(ctx, "EXPLAIN "+q.sql, q.args, func(rows pgx.Rows) error {
			var err error
			plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		require.NoError(t, err, q.name)
		text := strings.Join(plan, "\n")
		require.Contains(t, text, "Index Scan using jobs_due", "%s plan:\n%s", q.name, text)
		require.NotContains(t, text, "Sort", "%s plan:\n%s", q.name, text)
	}
}
