package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is one supervised child process (a service binary, a NATS node, the simulated exchange).
// Like a real supervisor it restarts the process when it exits on its own; a process the harness
// holds down (killed on purpose, or stopped) stays down until it is released.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	logs string // directory of <name>.log
	log  *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	held    bool // the harness wants it down: no automatic restart
	closed  bool // stack shutdown: never start again
	starts  int
	exits   int // exits the harness did not cause (crashes, fatal errors)
	restart time.Duration
}

func newProc(log *slog.Logger, logs, name, bin string, args, env []string) *proc {
	return &proc{name: name, bin: bin, args: args, env: env, logs: logs, log: log.With("process", name), restart: time.Second}
}

// start runs the process (no-op when it is already running).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startLocked()
}

func (p *proc) startLocked() error {
	if p.closed {
		return nil
	}
	if p.cmd != nil {
		return nil
	}
	out, err := os.OpenFile(filepath.Join(p.logs, p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	fmt.Fprintf(out, "\n=== chaos: start %d of %s at %s ===\n", p.starts+1, p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so the harness's Ctrl-C does not kill children out of order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.starts++
	p.held = false
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		out.Close()
		close(exited)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd == cmd {
			p.cmd = nil
		}
		if p.held || p.closed {
			return
		}
		p.exits++
		p.log.Warn("process exited on its own; supervisor restarts it", "err", err, "after", p.restart)
		go func() {
			time.Sleep(p.restart)
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.held && !p.closed {
				if err := p.startLocked(); err != nil {
					p.log.Error("restart failed", "err", err)
				}
			}
		}()
	}()
	return nil
}

// kill sends SIGKILL and holds the process down until start is called again.
func (p *proc) kill() { p.signalAndWait(syscall.SIGKILL, 0) }

// stop sends SIGTERM, waits up to grace, then SIGKILL; the process stays down.
func (p *proc) stop(grace time.Duration) { p.signalAndWait(syscall.SIGTERM, grace) }

func (p *proc) signalAndWait(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	p.held = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if sig == syscall.SIGKILL {
		<-exited
		return
	}
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// close stops the process for good (stack teardown).
func (p *proc) close(grace time.Duration) {
	p.stop(grace)
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// running reports whether the process is up.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// unexpectedExits counts exits the harness did not cause.
func (p *proc) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
