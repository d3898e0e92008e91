// Package eventstest gives tests a ready event bus: an embedded JetStream server with the
// platform's streams and consumers applied and the claim bucket created, and helpers to read
// what landed in a stream.
package eventstest

import (
	"context"
	"strings"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/natsauth/natsauthtest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is an embedded JetStream server with the topology applied.
type Bus struct {
	Server   *natstest.Server
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Topology events.Topology
	// Claims owns the CP_CLAIMS bucket (default threshold: half the server's max_payload).
	Claims *events.ClaimCheck
	// Auth is the server's identities on a NewSecuredBus (Conn and JS are the operator's); nil
	// on a NewBus, which admits anyone.
	Auth *natsauthtest.Server
}

// NewBus starts a server for t, connects (reconnecting quickly, for Restart), applies
// events.NewTopology(events.TopologyConfig{}) plus any extra consumer declarations, and creates
// the claim bucket.
func NewBus(t testing.TB, extra ...events.ConsumerDecl) *Bus {
	t.Helper()
	srv := natstest.NewServer(t)
	return newBus(t, srv, srv.Connect(t, nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1)), extra)
}

// NewSecuredBus is NewBus on a server running the shipped per-identity permissions
// (natsauthtest): services under test connect with Auth.Env or Auth.Keys, the bus itself as the
// operator, who administers streams and reads them but publishes no event (publish those as
// their service, with Auth.Connect).
func NewSecuredBus(t testing.TB, extra ...events.ConsumerDecl) *Bus {
	t.Helper()
	auth := natsauthtest.NewServer(t)
	b := newBus(t, auth.Server, auth.Connect(t, natsauth.Operator, nats.ReconnectWait(50*time.Millisecond), nats.MaxReconnects(-1)), extra)
	b.Auth = auth
	return b
}

func newBus(t testing.TB, srv *natstest.Server, nc *nats.Conn, extra []events.ConsumerDecl) *Bus {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("eventstest: jetstream: %v", err)
	}
	topo := events.NewTopology(events.TopologyConfig{})
	topo.Consumers = append(topo.Consumers, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topo.Apply(ctx, js); err != nil {
		t.Fatalf("eventstest: apply topology: %v", err)
	}
	claims, err := events.NewClaimCheck(ctx, js, events.ClaimConfig{Create: true})
	if err != nil {
		t.Fatalf("eventstest: claim bucket: %v", err)
	}
	return &Bus{Server: srv, Conn: nc, JS: js, Topology: topo, Claims: claims}
}

// Events decodes every message of stream whose subject matches filter (">" for all), in stream
// order, claim-checked payloads resolved from their bucket (ev.Data is the resolved payload). It
// fails the test on a message that does not decode or resolve.
func Events(t testing.TB, js jetstream.JetStream, stream, filter string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("eventstest: stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatalf("eventstest: stream %s info: %v", stream, err)
	}
	var out []events.Event
	var claims *events.ClaimCheck
	if info.State.Msgs == 0 {
		return out
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatalf("eventstest: ordered consumer on %s: %v", stream, err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			t.Fatalf("eventstest: fetch %s: %v", stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			data := msg.Data()
			if ref := msg.Headers().Get(events.HeaderClaim); ref != "" {
				if claims == nil {
					bucket, _, _ := strings.Cut(ref, "/")
					if claims, err = events.NewClaimCheck(ctx, js, events.ClaimConfig{Bucket: bucket}); err != nil {
						t.Fatalf("eventstest: %s message: %v", stream, err)
					}
				}
				if data, err = claims.Resolve(ctx, msg.Headers(), data); err != nil {
					t.Fatalf("eventstest: %s message: %v", stream, err)
				}
			}
			_, ev, err := events.Decode(ctx, &nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: data})
			if err != nil {
				t.Fatalf("eventstest: decode %s message: %v", stream, err)
			}
			ev.Metadata, _ = msg.Metadata()
			out = append(out, ev)
			if ev.Metadata != nil && ev.Metadata.NumPending == 0 {
				return out
			}
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("eventstest: fetch %s: %v", stream, err)
		}
		if n == 0 {
			return out
		}
	}
}
