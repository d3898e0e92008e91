// Package natsauthtest runs an embedded JetStream server with the shipped per-identity NATS
// permissions (libs/natsauth, deploy/nats) and fresh nkey identities, for tests that run
// services under their own identities.
package natsauthtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// Server is an embedded server that admits only the identities in Keys.
type Server struct {
	*natstest.Server
	Keys natsauth.Keys
	log  *violationLog
}

// Violations are the acts the server refused so far (its "Publish Violation" and "Subscription
// Violation" log lines, naming the client and the subject): a service under test that needs a
// permission it lacks shows here even when it copes with the refusal.
func (s *Server) Violations() []string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return slices.Clone(s.log.lines)
}

// violationLog is the server's logger: it keeps permission violations, drops the rest.
type violationLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *violationLog) Errorf(format string, v ...any) {
	if line := fmt.Sprintf(format, v...); strings.Contains(line, "Violation") {
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
	}
}
func (*violationLog) Noticef(string, ...any) {}
func (*violationLog) Warnf(string, ...any)   {}
func (*violationLog) Fatalf(string, ...any)  {}
func (*violationLog) Debugf(string, ...any)  {}
func (*violationLog) Tracef(string, ...any)  {}

// NewServer writes nkey identities and the permissions of the declared topology into a
// temporary directory and starts a server from them.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	keys, err := natsauth.WriteKeys(dir, events.NewTopology(events.TopologyConfig{}))
	if err != nil {
		t.Fatalf("natsauthtest: %v", err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("jetstream {}\ninclude \""+natsauth.UsersFile+"\"\n"), 0o644); err != nil {
		t.Fatalf("natsauthtest: %v", err)
	}
	s := &Server{Server: natstest.NewServerFromConfig(t, conf), Keys: keys, log: &violationLog{}}
	s.SetLoggerV2(s.log, false, false, false)
	return s
}

// Env is the environment a process of identity connects with: NATS_URL and
// NATS_NKEY_SEED_FILE.
func (s *Server) Env(identity string) map[string]string {
	return map[string]string{"NATS_URL": s.URL, "NATS_NKEY_SEED_FILE": s.Keys.SeedFile(identity)}
}

// Connect opens a connection as identity (with its inbox prefix, as the services connect),
// closed at cleanup. A refused act is reported to the connection's error handler, not printed.
func (s *Server) Connect(t testing.TB, identity string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	seed, err := nats.NkeyOptionFromSeed(s.Keys.SeedFile(identity))
	if err != nil {
		t.Fatalf("natsauthtest: %v", err)
	}
	base := []nats.Option{seed, nats.Name("test-" + identity), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	if identity != natsauth.Operator {
		base = append(base, nats.CustomInboxPrefix(natsauth.InboxPrefix(identity)))
	}
	return s.Server.Connect(t, append(base, opts...)...)
}
