// Package pgcluster runs a private PostgreSQL cluster from the server binaries installed on the
// machine. The test kit starts one per test binary; `cpctl dev` keeps one in .data/. It is root-safe:
// Postgres refuses to run as root, so when the caller is root the server runs as the `postgres` user
// with a data directory that user owns.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config describes a cluster. The zero value of every field but Dir is a sensible default.
type Config struct {
	// Dir holds the data directory (Dir/data) and the log (Dir/postgres.log). Required.
	Dir string
	// Port to listen on at 127.0.0.1. Zero picks a free port.
	Port int
	// BinDir holds initdb, pg_ctl and postgres. Empty: $CP_PG_BIN, then pg_config --bindir, then the
	// newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Durable keeps fsync on. Tests leave it off: a crashed test cluster is thrown away anyway.
	Durable bool
	// Settings are extra postgresql.conf lines (name → value), applied on every start.
	Settings map[string]string
	// HBA, when set, replaces pg_hba.conf on every start (one rule a line). Empty keeps initdb's:
	// every local connection trusted.
	HBA []string
}

// Cluster is a running (or stopped) local cluster.
type Cluster struct {
	cfg     Config
	bin     string
	runAs   string // OS user that owns and runs the server; empty when it is the caller
	dataDir string
	Port    int
}

// ErrNoBinaries is returned when no PostgreSQL server binaries can be found.
var ErrNoBinaries = errors.New("pgcluster: PostgreSQL server binaries not found (install the postgresql package or set CP_PG_BIN)")

// New prepares a cluster in cfg.Dir without starting it.
func New(cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgcluster: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: resolve %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	bin, err := findBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, bin: bin, dataDir: filepath.Join(dir, "data"), Port: cfg.Port}
	if os.Geteuid() == 0 {
		c.runAs = "postgres"
		if _, err := user.Lookup(c.runAs); err != nil {
			return nil, fmt.Errorf("pgcluster: running as root needs the %q OS user: %w", c.runAs, err)
		}
	}
	if c.Port == 0 {
		if c.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// DSN returns a libpq URL for database db as the superuser postgres.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// DataDir is where the cluster's files live.
func (c *Cluster) DataDir() string { return c.dataDir }

// Initialized reports whether the data directory already holds a cluster.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION"))
	return err == nil
}

// Start initialises the data directory on first use, then starts the server and waits until it
// accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("pgcluster: create %s: %w", c.cfg.Dir, err)
	}
	if err := c.chown(c.cfg.Dir); err != nil {
		return err
	}
	if !c.Initialized() {
		if err := c.run(ctx, "initdb", "-D", c.dataDir, "-U", "postgres", "--auth=trust",
			"--encoding=UTF8", "--locale=C", "--no-instructions"); err != nil {
			return fmt.Errorf("pgcluster: initdb: %w", err)
		}
	}
	if err := c.writeConf(); err != nil {
		return err
	}
	logFile := filepath.Join(c.cfg.Dir, "postgres.log")
	if err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-l", logFile, "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", c.Port, c.cfg.Dir), "start"); err != nil {
		tail, _ := os.ReadFile(logFile)
		return fmt.Errorf("pgcluster: start on port %d: %w\n%s", c.Port, err, lastLines(string(tail), 20))
	}
	return nil
}

// Stop shuts the server down (fast mode: active sessions are disconnected).
func (c *Cluster) Stop(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err != nil {
		return nil
	}
	if err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgcluster: stop: %w", err)
	}
	return nil
}

// Crash stops the server the way a power cut or an OOM kill would (immediate mode: no shutdown
// checkpoint, every session dropped); the next Start runs crash recovery. Fault-injection
// harnesses use it (tests/chaos).
func (c *Cluster) Crash(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); err != nil {
		return nil
	}
	if err := c.run(ctx, "pg_ctl", "-D", c.dataDir, "-m", "immediate", "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pgcluster: crash: %w", err)
	}
	return nil
}

// Remove deletes the cluster's directory. Stop it first.
func (c *Cluster) Remove() error { return os.RemoveAll(c.cfg.Dir) }

func (c *Cluster) writeConf() error {
	settings := map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "64",
		"max_wal_senders":       "64",
		"max_connections":       "400",
		"wal_sender_timeout":    "60s",
		"shared_buffers":        "256MB",
		"max_wal_size":          "2GB",
		"log_min_messages":      "warning",
		"log_line_prefix":       "'%m [%p] %d '",
	}
	if !c.cfg.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range c.cfg.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by pgcluster on every start; edit Config.Settings instead\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	path := filepath.Join(c.dataDir, "postgresql.auto.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgcluster: write %s: %w", path, err)
	}
	if err := c.chown(path); err != nil {
		return err
	}
	if len(c.cfg.HBA) == 0 {
		return nil
	}
	hba := filepath.Join(c.dataDir, "pg_hba.conf")
	body := "# written by pgcluster on every start; edit Config.HBA instead\n" + strings.Join(c.cfg.HBA, "\n") + "\n"
	if err := os.WriteFile(hba, []byte(body), 0o600); err != nil {
		return fmt.Errorf("pgcluster: write %s: %w", hba, err)
	}
	return c.chown(hba)
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) error {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.runAs != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.cfg.Dir
	// The server must not die with the caller's process group on Ctrl-C: it is stopped explicitly.
	cmd.SysProcAttr = detached()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.runAs == "" {
		return nil
	}
	u, err := user.Lookup(c.runAs)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("pgcluster: chown %s to %s: %w", path, c.runAs, err)
	}
	return nil
}

func findBinDir(explicit string) (string, error) {
	candidates := []string{explicit, os.Getenv("CP_PG_BIN")}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(globbed, func(i, j int) bool { return versionOf(globbed[i]) > versionOf(globbed[j]) })
	candidates = append(candidates, globbed...)
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitReady polls until addr accepts TCP connections or the timeout passes.
func WaitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgcluster: %s not ready after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
