package relay_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

// As cp_replication (migration 00016: REPLICATION, no table rights) the relay streams through
// the publication the migration made; asked for other tables, which only the tables' owner may
// publish, it says which statement the owner must run instead of failing obscurely.
func TestRelayAsReplicationRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := b.db.RoleURL(t, pgtest.ReplicationRole)
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	r, _ := b.startRelay(t, b.nc, func(c *relay.Config) { c.ConnString, c.Pool = url, pool })
	waitFor(t, 20*time.Second, "streaming as cp_replication", func() bool { return r.State() == relay.StateStreaming })

	var logs logtest.Buffer
	other, _ := b.startRelay(t, b.nc, func(c *relay.Config) {
		c.ConnString, c.Pool = url, pool
		c.Slot = b.slot() + "_other"
		c.Tables = []string{"market.account_trades"}
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	waitFor(t, 20*time.Second, "the owner's statement in the log", func() bool {
		return strings.Contains(logs.String(), "ALTER PUBLICATION \\\"cp_cdc\\\" SET TABLE \\\"market\\\".\\\"account_trades\\\"` as the schema owner")
	})
	require.NotEqual(t, relay.StateStreaming, other.State())
}
