package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations returns the embedded migration files, in the order goose applies them.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time; its absence is a build bug
	}
	return sub
}

// Open connects a pool to url and checks it with a ping. The pool size is pgx's default (or the
// URL's pool_max_conns); OpenPool sets it.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) { return OpenPool(ctx, url, 0) }

// OpenPool is Open with at most maxConns connections (0: pgx's default).
func OpenPool(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", Redact(err, url))
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", SafeURL(url), Redact(err, url))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping postgres %s: %w", SafeURL(url), Redact(err, url))
	}
	return pool, nil
}

// MigrationStatus is one migration and whether it is applied.
type MigrationStatus struct {
	Version int64
	Source  string
	Applied bool
}

func provider(ctx context.Context, url string) (*goose.Provider, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("parse database url: %w", Redact(err, url))
	}
	sqlDB := stdlib.OpenDB(*cfg)
	// Replicas starting at once with MIGRATE_ON_START=1 take turns: a session advisory lock held
	// for the whole run, probed every second for up to ten minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, Migrations(),
		goose.WithTableName("ops.goose_db_version"), goose.WithSessionLocker(locker))
	if err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("load migrations: %w", err)
	}
	// goose creates its version table before the first migration runs, so its schema must exist.
	// Under a transaction lock: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
	if err := createOpsSchema(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("create schema ops on %s: %w", SafeURL(url), Redact(err, url))
	}
	return p, sqlDB, nil
}

// createOpsSchema creates schema ops unless it exists, serialised with other processes doing so.
func createOpsSchema(ctx context.Context, sqlDB *sql.DB) error {
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('cryptopill.create_schema_ops'))`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS ops"); err != nil {
		return err
	}
	return tx.Commit()
}

// MigrateUp applies every pending migration and returns the versions it applied.
func MigrateUp(ctx context.Context, url string) ([]int64, error) {
	p, sqlDB, err := provider(ctx, url)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	return migrateUp(ctx, p)
}

// MigrateUpEach applies the pending migrations one at a time, as MigrateUp does, calling each
// after every one with its version, how many are applied and how many were pending (cpctl
// migrate up shows a progress bar with it). It returns the versions it applied.
func MigrateUpEach(ctx context.Context, url string, each func(version int64, done, pending int)) ([]int64, error) {
	p, sqlDB, err := provider(ctx, url)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	status, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: status: %w", err)
	}
	pending := 0
	for _, s := range status {
		if s.State == goose.StatePending {
			pending++
		}
	}
	var applied []int64
	for {
		r, err := p.UpByOne(ctx)
		if errors.Is(err, goose.ErrNoNextVersion) {
			return applied, nil
		}
		if err != nil {
			return applied, fmt.Errorf("migrate up: %w", err)
		}
		applied = append(applied, r.Source.Version)
		if each != nil {
			each(r.Source.Version, len(applied), max(pending, len(applied)))
		}
	}
}

func migrateUp(ctx context.Context, p *goose.Provider) ([]int64, error) {
	results, err := p.Up(ctx)
	var applied []int64
	for _, r := range results {
		if r.Error == nil {
			applied = append(applied, r.Source.Version)
		}
	}
	if err != nil {
		return applied, fmt.Errorf("migrate up: %w", err)
	}
	return applied, nil
}

// EnsureSchema is what a service does at start on one connection: apply every pending migration
// when migrate is set (MIGRATE_ON_START), then CheckSchema. It returns the versions it applied.
func EnsureSchema(ctx context.Context, url string, migrate bool) ([]int64, error) {
	p, sqlDB, err := provider(ctx, url)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	var applied []int64
	if migrate {
		if applied, err = migrateUp(ctx, p); err != nil {
			return applied, err
		}
	}
	return applied, checkSchema(ctx, p)
}

// SchemaError says the database's schema is not the one this binary was built for.
type SchemaError struct {
	// Database is the schema version the database is at; Binary the newest this binary embeds.
	Database, Binary int64
	// Pending are embedded versions the database lacks.
	Pending []int64
}

func (e *SchemaError) Error() string {
	if e.Database > e.Binary {
		return fmt.Sprintf("database schema is at version %d, newer than this binary knows (version %d): run a binary built at least as new as the migrations applied",
			e.Database, e.Binary)
	}
	return fmt.Sprintf("database schema is at version %d, this binary needs version %d (pending %v): run `cpctl migrate up` or set MIGRATE_ON_START=1",
		e.Database, e.Binary, e.Pending)
}

// CheckSchema returns a *SchemaError when the database's schema is older than the newest
// migration this binary embeds (any embedded migration not applied), or newer than it.
func CheckSchema(ctx context.Context, url string) error {
	p, sqlDB, err := provider(ctx, url)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	return checkSchema(ctx, p)
}

func checkSchema(ctx context.Context, p *goose.Provider) error {
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migration status: %w", err)
	}
	have, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	var binary int64
	var pending []int64
	for _, s := range st {
		binary = max(binary, s.Source.Version)
		if s.State != goose.StateApplied {
			pending = append(pending, s.Source.Version)
		}
	}
	if have > binary || len(pending) > 0 {
		return &SchemaError{Database: have, Binary: binary, Pending: pending}
	}
	return nil
}

// MigrateStatus lists every embedded migration and whether the database has it.
func MigrateStatus(ctx context.Context, url string) ([]MigrationStatus, error) {
	p, sqlDB, err := provider(ctx, url)
	if err != nil {
		return nil, err
	}
	defer sqlDB.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{Version: s.Source.Version, Source: s.Source.Path, Applied: s.State == goose.StateApplied})
	}
	return out, nil
}

// SafeURL returns url with its password masked, for logs and errors.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil {
			return "<unparseable database url>"
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Redact replaces the password of url wherever it appears in err's message.
func Redact(err error, raw string) error {
	if err == nil {
		return nil
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		return err
	}
	return redactedError{err: err, secret: pw}
}

type redactedError struct {
	err    error
	secret string
}

func (e redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx")
}

func (e redactedError) Unwrap() error { return e.err }

// ErrNotMigrated is returned by services that find the schema missing and were not asked to migrate.
var ErrNotMigrated = errors.New("database schema is not migrated (run `cpctl migrate up` or set MIGRATE_ON_START=1)")
