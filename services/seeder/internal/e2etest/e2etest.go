// Package e2etest runs the real orchestrator binary (its change relay, ticks and universe watcher)
// against a test's Postgres and JetStream, for end-to-end tests of the services that consume its
// events. The orchestrator's packages are internal to its module, so the tests run it as the
// operators do: as a process.
package e2etest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// Build compiles a workspace binary by import path into a temporary directory, once per test
// binary, e.g. Build(t, "cryptopill.dev/jobs/services/orchestrator").
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cp-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", binPath, pkg)
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("e2etest: go build %s: %v\n%s", pkg, buildErr, buildOut)
	}
	return binPath
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

// Start runs bin with env added to the test's environment and stops it (SIGTERM, then SIGKILL)
// when the test ends, logging its output if the test failed.
func Start(t testing.TB, bin string, env ...string) *Process {
	t.Helper()
	p := &Process{done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("e2etest: start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), p.Output())
		}
	})
	return p
}

// Orchestrator runs the orchestrator on the test's database and NATS: relay, ticks, universe.
func Orchestrator(t testing.TB, databaseURL, natsURL string, env ...string) *Process {
	t.Helper()
	bin := Build(t, "cryptopill.dev/jobs/services/orchestrator")
	return Start(t, bin, append([]string{
		"CP_ENV=dev", "RUN_JOBS=1", "MIGRATE_ON_START=0", "LOG_LEVEL=info",
		"DATABASE_URL=" + databaseURL, "NATS_URL=" + natsURL, "HTTP_ADDR=127.0.0.1:0",
	}, env...)...)
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
