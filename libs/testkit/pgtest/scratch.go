package pgtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
)

// ScratchConfig describes a scratch cluster.
type ScratchConfig struct {
	// Name names the database and the temporary directory, e.g. "bench-jobs".
	Name string
	// Durable keeps fsync and full-page writes on (the test kit's cluster has them off).
	Durable bool
	// Settings are postgresql.conf lines on top of the test kit's.
	Settings map[string]string
}

// Scratch is a throwaway private cluster with one migrated database, for the benchmark commands
// (`make bench-*`), which run outside `go test` but on the test kit's Postgres.
type Scratch struct {
	Cluster *pgcluster.Cluster
	// URL connects to the migrated database as the superuser.
	URL string
	dir string
}

// StartScratch starts a cluster with the test kit's settings (plus cfg.Settings) in a new
// temporary directory, creates database cfg.Name and migrates it. Close stops and removes it.
func StartScratch(ctx context.Context, cfg ScratchConfig) (*Scratch, error) {
	if cfg.Name == "" {
		cfg.Name = "scratch"
	}
	dir, err := os.MkdirTemp("", "cp-"+cfg.Name+"-")
	if err != nil {
		return nil, err
	}
	// Run as root, the server runs as postgres, which must reach its directory inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	settings := map[string]string{"shared_buffers": "64MB"}
	maps.Copy(settings, cfg.Settings)
	c, err := pgcluster.New(pgcluster.Config{Dir: filepath.Join(dir, "pg"), Durable: cfg.Durable, Settings: settings})
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	s := &Scratch{Cluster: c, URL: c.DSN(cfg.Name), dir: dir}
	if err := c.Start(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	if err := s.createAndMigrate(ctx, cfg.Name); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Scratch) createAndMigrate(ctx context.Context, name string) error {
	admin, err := pgx.Connect(ctx, s.Cluster.DSN("postgres"))
	if err != nil {
		return err
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	_ = admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	_, err = db.MigrateUp(ctx, s.URL)
	return err
}

// Close stops the cluster and removes its directory.
func (s *Scratch) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(s.Cluster.Stop(ctx), os.RemoveAll(s.dir))
}
