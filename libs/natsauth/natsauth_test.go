package natsauth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/natsauth/natsauthtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// The shipped permissions are the ones derived from the topology: a stream, durable or bucket
// added in code without regenerating deploy/nats/permissions.conf fails here.
func TestShippedPermissionsAreGenerated(t *testing.T) {
	t.Parallel()
	shipped, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", natsauth.PermissionsFile))
	require.NoError(t, err)
	require.Equal(t, natsauth.RenderPermissions(events.NewTopology(events.TopologyConfig{})), string(shipped),
		"deploy/nats/permissions.conf is stale: run `make natsperm`")
}

// The shipped server configuration parses with a users file of the example's shape: every
// identity is a user with its own permissions, and there is no anonymous user.
func TestShippedConfigParses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"nats.conf", natsauth.PermissionsFile} {
		b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "deploy", "nats", "users.conf.example"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, natsauth.UsersFile), example, 0o644))
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	require.NoError(t, err)
	require.True(t, opts.JetStream)
	require.Len(t, opts.Nkeys, len(natsauth.Identities()))
	require.Empty(t, opts.Users)
	require.Empty(t, opts.NoAuthUser)
	for _, u := range opts.Nkeys {
		require.NotNil(t, u.Permissions, u.Nkey)
		require.True(t, strings.HasPrefix(u.Nkey, "U"), u.Nkey)
	}
}

// probe reports whether the server refuses an act of one connection: each act is followed by a
// flush, so a refusal (an -ERR naming the subject) has arrived when it returns.
type probe struct {
	t  *testing.T
	nc *nats.Conn
	id string
}

func (p probe) refused(subject string) bool {
	p.t.Helper()
	return strings.Contains(fmt.Sprint(p.nc.LastError()), fmt.Sprintf("%q", subject))
}

// publish sends an empty request to subject (no one waits for the answer) and reports whether
// it was refused.
func (p probe) publishRefused(subject string) bool {
	p.t.Helper()
	require.NoError(p.t, p.nc.PublishRequest(subject, p.nc.NewRespInbox(), nil))
	require.NoError(p.t, p.nc.Flush())
	return p.refused(subject)
}

func (p probe) subscribeRefused(subject string) bool {
	p.t.Helper()
	sub, err := p.nc.SubscribeSync(subject)
	require.NoError(p.t, err)
	require.NoError(p.t, p.nc.Flush())
	defer sub.Unsubscribe()
	return p.refused(subject)
}

// concrete is a subject matching filter: each wildcard token replaced by a literal.
func concrete(filter string) string {
	toks := strings.Split(filter, ".")
	for i, tk := range toks {
		if tk == "*" || tk == ">" {
			toks[i] = "x"
		}
	}
	return strings.Join(toks, ".")
}

// Each service's identity, on a server running the shipped permissions, can do what the declared
// topology says it does and nothing it says belongs to another: the expectations come from the
// same topology and subject constants the services use.
func TestEachIdentityMayOnlyWhatItsServiceDoes(t *testing.T) {
	t.Parallel()
	srv := natsauthtest.NewServer(t)
	ctx := context.Background()
	topo := events.NewTopology(events.TopologyConfig{})

	// Without credentials, and with an unknown key, no connection.
	_, err := nats.Connect(srv.URL)
	require.ErrorIs(t, err, nats.ErrAuthorization)

	js := func(id string) (*nats.Conn, jetstream.JetStream) {
		nc := srv.Connect(t, id)
		j, err := jetstream.New(nc)
		require.NoError(t, err)
		return nc, j
	}
	// Every service applies its part of the topology, owners first.
	onc, orchJS := js(events.ServiceOrchestrator)
	defer func() { t.Log("orch last error:", onc.LastError()) }()
	require.NoError(t, topo.ApplyAs(ctx, orchJS, events.ServiceOrchestrator))
	for _, svc := range services() {
		_, j := js(svc)
		require.NoError(t, topo.ApplyAs(ctx, j, svc), svc)
		require.NoError(t, topo.ApplyAs(ctx, j, svc), "%s restarts", svc)
	}
	// The orchestrator's flags bucket.
	_, err = orchJS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: natsauth.FlagsBucket})
	require.NoError(t, err)

	for _, svc := range services() {
		t.Run(svc, func(t *testing.T) {
			nc, j := js(svc)
			p := probe{t: t, nc: nc, id: svc}
			owned := map[string]bool{}
			for _, s := range topo.Streams {
				owned[s.Name] = s.Owner == svc
				for _, f := range s.Subjects {
					subj := concrete(f)
					if s.Name == events.StreamDLQ {
						continue // per durable, below
					}
					if s.Owner == svc {
						_, err := j.Publish(ctx, subj, []byte("{}"))
						require.NoError(t, err, "%s publishes %s to its stream %s", svc, subj, s.Name)
					} else {
						require.True(t, p.publishRefused(subj), "%s must not publish %s (stream %s of %s)", svc, subj, s.Name, s.Owner)
					}
				}
				// Nobody but the operator deletes or purges a stream; only the owner updates it.
				for _, op := range []string{"DELETE", "PURGE"} {
					api := "$JS.API.STREAM." + op + "." + s.Name
					require.True(t, p.publishRefused(api), "%s must not %s", svc, api)
				}
				if s.Owner != svc {
					api := "$JS.API.STREAM.UPDATE." + s.Name
					require.True(t, p.publishRefused(api), "%s must not update %s (owned by %s)", svc, s.Name, s.Owner)
					if !s.UsersCreate {
						api := "$JS.API.STREAM.CREATE." + s.Name
						require.True(t, p.publishRefused(api), "%s must not create %s (owned by %s)", svc, s.Name, s.Owner)
					}
				}
			}
			for _, c := range topo.Consumers {
				d := c.Config.Durable
				if c.Owner == svc {
					cons, err := j.Consumer(ctx, c.Stream, d)
					require.NoError(t, err)
					_, err = cons.FetchNoWait(1)
					require.NoError(t, err, "%s pulls its durable %s", svc, d)
					_, err = j.Publish(ctx, events.DeadLetterSubject(d), []byte("{}"))
					require.NoError(t, err, "%s dead-letters %s", svc, d)
					continue
				}
				for _, api := range []string{
					"$JS.API.CONSUMER.MSG.NEXT." + c.Stream + "." + d,
					"$JS.API.CONSUMER.DELETE." + c.Stream + "." + d,
					"$JS.API.CONSUMER.CREATE." + c.Stream + "." + d,
					"$JS.API.CONSUMER.CREATE." + c.Stream + "." + d + ".cp.x",
					"$JS.API.CONSUMER.DURABLE.CREATE." + c.Stream + "." + d,
					"$JS.ACK." + c.Stream + "." + d + ".1.1.1.1.1",
					events.DeadLetterSubject(d),
				} {
					require.True(t, p.publishRefused(api), "%s must not act on %s's durable %s: %s", svc, c.Owner, d, api)
				}
			}
			// Another identity's replies, and any stream's subjects directly, are not its to read.
			for _, other := range natsauth.Identities() {
				if other != svc && other != natsauth.Operator {
					require.True(t, p.subscribeRefused(natsauth.InboxPrefix(other)+".>"), "%s reads %s's replies", svc, other)
				}
			}
			require.True(t, p.subscribeRefused("_INBOX.>"))
			require.True(t, p.subscribeRefused("cp.>"))
			require.True(t, p.publishRefused("$JS.API.STREAM.DELETE."+events.StreamDLQ))
			require.True(t, p.publishRefused("$KV."+natsauth.FlagsBucket+".freeze") == (svc != events.ServiceOrchestrator))

			// It registers with the services API and answers its operator endpoints.
			ms, err := micro.AddService(nc, micro.Config{Name: svc, Version: "0.0.1"})
			require.NoError(t, err)
			t.Cleanup(func() { _ = ms.Stop() })
			require.NoError(t, ms.AddGroup("cp.ops."+svc).AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) })))
			require.NoError(t, nc.Flush(), "the server has the subscriptions before the requests")
			op := srv.Connect(t, natsauth.Operator)
			for _, subj := range []string{"$SRV.PING", "$SRV.INFO." + svc, "$SRV.STATS." + svc + "." + ms.Info().ID} {
				_, err := op.Request(subj, nil, 5*time.Second)
				require.NoError(t, err, "%s answers %s", svc, subj)
			}
			resp, err := op.Request("cp.ops."+svc+".echo", []byte("hi"), 5*time.Second)
			require.NoError(t, err)
			require.Equal(t, "hi", string(resp.Data))
			// Another service's endpoints are not its to serve.
			for _, other := range services() {
				if other != svc {
					require.True(t, p.subscribeRefused("cp.ops."+other+".x"), "%s serves %s's endpoints", svc, other)
				}
			}
		})
	}

	t.Run("straux follows its own ticks", func(t *testing.T) {
		// Its tick assist reads CP_TICKS with an ordered consumer filtered to its own ticks.
		_, j := js(events.ServiceStraux)
		oc, err := j.OrderedConsumer(ctx, events.StreamTicks, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.TickSubject(events.ModuleStraux)}, DeliverPolicy: jetstream.DeliverNewPolicy})
		require.NoError(t, err)
		_, err = oc.FetchNoWait(1)
		require.NoError(t, err)
		p := probe{t: t, nc: srv.Connect(t, events.ServiceStraux)}
		require.True(t, p.publishRefused("$JS.API.CONSUMER.CREATE."+events.StreamTicks+".x."+events.TickSubject(events.ModuleCinimport)),
			"not cinimport's ticks")
	})

	t.Run("named refusals", func(t *testing.T) {
		// The acts the issue names, spelled with the services' own subject functions.
		straux := probe{t: t, nc: srv.Connect(t, events.ServiceStraux)}
		require.True(t, straux.publishRefused(events.TickSubject(events.ModuleStraux)))
		require.True(t, straux.publishRefused(events.ChangeSubject("market", "account_trades", eventsv1.RowChange_OP_INSERT)))
		cin := probe{t: t, nc: srv.Connect(t, events.ServiceCinimport)}
		require.True(t, cin.publishRefused(events.TickSubject(events.ModuleCinimport)))
		require.True(t, cin.publishRefused(events.SubjectUniverseChanged))
		seeder := probe{t: t, nc: srv.Connect(t, events.ServiceSeeder)}
		require.True(t, seeder.publishRefused(events.JobSubject("fetch_klines", eventsv1.JobStatus_JOB_STATUS_SUCCEEDED)))
		// The server logged them: what the service tests' Violations() checks are empty of.
		require.True(t, slices.ContainsFunc(srv.Violations(), func(l string) bool {
			return strings.Contains(l, fmt.Sprintf("%q", events.TickSubject(events.ModuleStraux)))
		}), "%q", srv.Violations())
	})

	t.Run("operator", func(t *testing.T) {
		nc, j := js(natsauth.Operator)
		p := probe{t: t, nc: nc}
		// Administers streams and consumers, reads the dead letters, and may inject an event.
		for _, s := range topo.Streams {
			_, err := j.Stream(ctx, s.Name)
			require.NoError(t, err)
			for _, f := range s.Subjects {
				require.False(t, p.publishRefused(concrete(f)), "the operator may publish %s by hand", concrete(f))
			}
		}
		require.False(t, p.subscribeRefused("cp.dlq.>"), "the operator watches dead letters with nats sub")
		require.True(t, p.subscribeRefused("cp.ops.straux.replay"), "the operator calls endpoints, it does not serve them")
		dlq, err := j.Stream(ctx, events.StreamDLQ)
		require.NoError(t, err)
		_, err = dlq.GetLastMsgForSubject(ctx, ">")
		require.NoError(t, err, "the operator reads dead letters")
		scratch := "CP_OPERATOR_SCRATCH"
		_, err = j.CreateStream(ctx, jetstream.StreamConfig{Name: scratch, Subjects: []string{"scratch.>"}})
		require.NoError(t, err)
		require.NoError(t, j.DeleteStream(ctx, scratch))
		kv, err := j.KeyValue(ctx, natsauth.FlagsBucket)
		require.NoError(t, err)
		_, err = kv.Put(ctx, "freeze", []byte("1"))
		require.NoError(t, err, "the operator sets freeze flags")
	})
}

func services() []string {
	return slices.DeleteFunc(natsauth.Identities(), func(id string) bool { return id == natsauth.Operator })
}

// A key the server does not list is refused like no credentials at all.
func TestUnknownIdentityRefused(t *testing.T) {
	t.Parallel()
	srv := natsauthtest.NewServer(t)
	other := natsauthtest.NewServer(t) // its keys are not srv's
	seed, err := nats.NkeyOptionFromSeed(other.Keys.SeedFile(events.ServiceOrchestrator))
	require.NoError(t, err)
	_, err = nats.Connect(srv.URL, seed)
	require.True(t, errors.Is(err, nats.ErrAuthorization), "got %v", err)
}
