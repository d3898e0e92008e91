// Package pgtest gives tests a real Postgres: one private cluster per test binary (started on first
// use, root-safe, wal_level=logical, fsync=off), and a fresh database per test cloned from a
// migrated template and dropped, with its replication slots, when the test ends.
//
// Every package that uses it wires TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
)

const templateDB = "cp_template"

var (
	once     sync.Once
	shared   *pgcluster.Cluster
	startErr error
	admin    *pgxpool.Pool
	dbSeq    atomic.Int64
	createMu sync.Mutex // CREATE DATABASE ... TEMPLATE copies are serialised; each takes ~tens of ms
)

// Main runs the tests, then stops and removes the shared cluster if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops the shared cluster. Main calls it; call it yourself only in a custom TestMain.
func Shutdown() {
	if shared == nil {
		return
	}
	if admin != nil {
		admin.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = shared.Stop(ctx)
	_ = shared.Remove()
	shared = nil
}

// Cluster returns the shared cluster, starting it on first use.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	once.Do(func() { startErr = start() })
	if startErr != nil {
		t.Fatalf("pgtest: %v", startErr)
	}
	return shared
}

func start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sweepStale(ctx)
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cptest-pg-%d", os.Getpid()))
	c, err := pgcluster.New(pgcluster.Config{Dir: dir, Settings: map[string]string{
		"shared_buffers": "64MB",
	}})
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Remove()
		return err
	}
	shared = c
	admin, err = pgxpool.New(ctx, c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect admin pool: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	if _, err := db.MigrateUp(ctx, c.DSN(templateDB)); err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	return nil
}

// sweepStale stops and removes clusters left behind by test binaries that died without cleanup.
func sweepStale(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "cptest-pg-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "cptest-pg-"))
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if c, err := pgcluster.New(pgcluster.Config{Dir: d}); err == nil {
			_ = c.Stop(ctx)
		}
		_ = os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// DB is one test's private database.
type DB struct {
	Name string
	// URL connects to the database as the superuser.
	URL string
	// Pool is open on URL and closed at cleanup.
	Pool *pgxpool.Pool
}

// NewDB creates a fresh, fully migrated database for t and drops it when t ends.
func NewDB(t testing.TB) *DB { return newDB(t, templateDB) }

// NewEmptyDB creates a fresh database with no schema, for migration tests.
func NewEmptyDB(t testing.TB) *DB { return newDB(t, "template0") }

func newDB(t testing.TB, template string) *DB {
	t.Helper()
	c := Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := fmt.Sprintf("t_%d_%s", dbSeq.Add(1), sanitize(t.Name()))
	createMu.Lock()
	_, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), template))
	createMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	d := &DB{Name: name, URL: c.DSN(name)}
	d.Pool, err = pgxpool.New(ctx, d.URL)
	if err != nil {
		t.Fatalf("pgtest: connect %s: %v", name, err)
	}
	t.Cleanup(func() { d.drop(t) })
	return d
}

func (d *DB) drop(t testing.TB) {
	d.Pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Slots pin a database: terminate their senders, drop them, then the database.
	_, err := admin.Exec(ctx, `
		SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		 WHERE database = $1 AND active_pid IS NOT NULL`, d.Name)
	if err == nil {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_, err = admin.Exec(ctx, `
				SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				 WHERE database = $1 AND NOT active`, d.Name)
			var left int
			_ = admin.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE database = $1`, d.Name).Scan(&left)
			if err == nil && left == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{d.Name}.Sanitize())); err != nil {
		t.Errorf("pgtest: drop database %s: %v", d.Name, err)
	}
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
