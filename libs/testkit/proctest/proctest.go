// Package proctest runs the project's own binaries as processes in tests, as operators run them:
// end-to-end tests of a service start the real orchestrator (its change relay, ticks and universe
// watcher) against the test's Postgres and JetStream. Binaries are built once per test binary into
// a directory named after the test process; directories of finished test processes are swept.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{} // import path → binary
)

// Build compiles a workspace binary by import path, once per test binary, e.g.
// Build(t, "cryptopill.dev/jobs/services/orchestrator").
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	sweep()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cp-proctest-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("proctest: %v", err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("proctest: go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// sweep removes the binaries of test processes that have exited.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "cp-proctest-*"))
	for _, d := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "cp-proctest-"))
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil {
			_ = os.RemoveAll(d)
		}
	}
}

// Process is a running binary whose output is kept for the test log.
type Process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Stop ends the process before the test does (a service going down mid-test): SIGTERM, then
// SIGKILL after grace. It returns once the process has exited; the cleanup then has nothing to do.
func (p *Process) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Start runs bin with env added to the test's environment and stops it (SIGTERM, then SIGKILL)
// when the test ends, logging its output if the test failed.
func Start(t testing.TB, bin string, env ...string) *Process {
	t.Helper()
	p := &Process{done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("proctest: start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(20 * time.Second)
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.Output())
		}
	})
	return p
}

// Orchestrator runs the orchestrator on the test's database and NATS: relay, ticks, universe.
//
// Unless env turns the change relay off (CDC_ENABLED=0), it returns once the relay streams from
// its slot: a row committed before the slot exists is never relayed, so a test that commits
// rows right after starting the orchestrator would otherwise race the slot's creation.
func Orchestrator(t testing.TB, databaseURL, natsURL string, env ...string) *Process {
	t.Helper()
	bin := Build(t, "cryptopill.dev/jobs/services/orchestrator")
	p := Start(t, bin, append([]string{
		"CP_ENV=dev", "RUN_JOBS=1", "MIGRATE_ON_START=0", "LOG_LEVEL=info",
		"DATABASE_URL=" + databaseURL, "NATS_URL=" + natsURL, "HTTP_ADDR=127.0.0.1:0",
	}, env...)...)
	slot, relay := "cp_relay", true
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CDC_SLOT="); ok {
			slot = v
		}
		if v, ok := strings.CutPrefix(kv, "CDC_ENABLED="); ok && v != "1" {
			relay = false
		}
	}
	if relay {
		waitStreaming(t, databaseURL, slot, p)
	}
	return p
}

// waitStreaming waits until a walsender streams from slot (not merely a backend creating it).
func waitStreaming(t testing.TB, databaseURL, slot string, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatalf("proctest: connect to wait for the relay: %v", err)
	}
	defer conn.Close(context.Background())
	ok := Wait(ctx, 60*time.Second, func() bool {
		return pgtest.SlotStreaming(ctx, conn, slot)
	})
	if !ok {
		t.Fatalf("proctest: the orchestrator's change relay did not stream from slot %s within 60s; its output:\n%s", slot, p.Output())
	}
}

// Wait polls cond every 50ms until it holds or timeout passes.
func Wait(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
