// Package natsauthtest runs an embedded JetStream server with the shipped per-identity NATS
// permissions (libs/natsauth, deploy/nats) and fresh nkey identities, for tests that run
// services under their own identities.
package natsauthtest

import (
	"os"
	"path/filepath"
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
}

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
	return &Server{Server: natstest.NewServerFromConfig(t, conf), Keys: keys}
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
