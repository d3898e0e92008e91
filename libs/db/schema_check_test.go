package db_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// migrationVersions are the versions embedded in this binary, in order.
func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	names, err := fs.Glob(db.Migrations(), "*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	var out []int64
	for _, n := range names {
		require.Regexp(t, `^\d{5}_[a-z0-9_]+\.sql$`, n)
		var v int64
		_, err := fmt.Sscanf(n[:5], "%d", &v)
		require.NoError(t, err, n)
		out = append(out, v)
	}
	return out
}

// newestMigration is the highest version embedded in this binary.
func newestMigration(t *testing.T) int64 {
	v := migrationVersions(t)
	return v[len(v)-1]
}

// Replicas starting at once with MIGRATE_ON_START=1 take turns on the advisory lock: each
// migration is applied exactly once and none of them fails.
func TestConcurrentMigrateUpIsSerialised(t *testing.T) {
	t.Parallel()
	d := pgtest.NewEmptyDB(t)
	ctx := context.Background()
	const replicas = 4
	var wg sync.WaitGroup
	applied := make([][]int64, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = db.MigrateUp(ctx, d.URL)
		}()
	}
	wg.Wait()
	total := 0
	for i := range replicas {
		require.NoError(t, errs[i], "replica %d", i)
		total += len(applied[i])
	}
	require.Equal(t, len(migrationVersions(t)), total, "every migration applied once, by one of the replicas")
	require.NoError(t, db.CheckSchema(ctx, d.URL))
}

// A binary started against a schema older or newer than the one it embeds is told both versions.
func TestCheckSchemaNamesBothVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newest := newestMigration(t)

	empty := pgtest.NewEmptyDB(t)
	err := db.CheckSchema(ctx, empty.URL)
	var se *db.SchemaError
	require.True(t, errors.As(err, &se), "%v", err)
	require.EqualValues(t, 0, se.Database)
	require.Equal(t, newest, se.Binary)
	require.Equal(t, migrationVersions(t), se.Pending)
	require.Contains(t, err.Error(), "cpctl migrate up")

	d := pgtest.NewDB(t)
	require.NoError(t, db.CheckSchema(ctx, d.URL))
	_, err = d.Pool.Exec(ctx, `INSERT INTO ops.goose_db_version (version_id, is_applied) VALUES ($1, true)`, newest+5)
	require.NoError(t, err)
	err = db.CheckSchema(ctx, d.URL)
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, newest+5, se.Database)
	require.Equal(t, newest, se.Binary)
	require.Contains(t, err.Error(), "newer than this binary knows")
}

// Migration numbers only grow, one file each. (00009 is unused: a branch's 00009 was merged
// after 00010 and 00011 and renumbered 00012, since goose refuses a version below the database's
// once the database has moved past it. A new migration takes the next number above the highest.)
func TestMigrationsAreNumberedInOrder(t *testing.T) {
	t.Parallel()
	v := migrationVersions(t)
	for i := 1; i < len(v); i++ {
		require.Greater(t, v[i], v[i-1], "migration versions must increase")
	}
}
