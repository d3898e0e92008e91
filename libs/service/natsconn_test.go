package service_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// A service authenticates with a user and a password from a mounted file; a wrong password is a
// start failure that names the server and the user, and neither the password given nor the
// right one is in the error, the start log or /metrics.
func TestNATSPasswordNeverShown(t *testing.T) {
	t.Parallel()
	const right, wrong = "r1ght-pass-5d8e0c", "wr0ng-pass-71c2aa"
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`jetstream {}
authorization { users = [ { user: "orchestrator", password: "`+right+`" } ] }
`), 0o644))
	ns := natstest.NewServerFromConfig(t, conf)

	start := func(t *testing.T, password string) (*logtest.Buffer, string, context.CancelFunc, error) {
		pwFile := filepath.Join(t.TempDir(), "nats_password")
		require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
		l := config.NewLoader(func(k string) (string, bool) {
			v, ok := map[string]string{"DATABASE_URL": "postgres://unused/x", "NATS_URL": ns.URL,
				"NATS_USER": "orchestrator", "NATS_PASSWORD_FILE": pwFile, "HTTP_ADDR": "127.0.0.1:0"}[k]
			return v, ok
		})
		common := l.LoadCommon("127.0.0.1:0")
		require.NoError(t, l.Err())
		logs := &logtest.Buffer{}
		ctx, cancel := context.WithCancel(context.Background())
		metrics := make(chan string, 1)
		errc := make(chan error, 1)
		go func() {
			errc <- service.Start(ctx, service.Options{Name: "orchestrator", Common: common, NoDatabase: true,
				Logger: slog.New(slog.NewJSONHandler(logs, nil))},
				func(ctx context.Context, p *service.Process) error {
					resp, err := http.Get("http://" + p.HTTPAddr + "/metrics")
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						metrics <- string(b)
					}
					<-ctx.Done()
					return nil
				})
		}()
		select {
		case m := <-metrics:
			return logs, m, cancel, nil
		case err := <-errc:
			return logs, "", cancel, err
		case <-time.After(60 * time.Second):
			t.Fatal("service neither started nor failed")
		}
		return nil, "", cancel, nil
	}

	t.Run("wrong password", func(t *testing.T) {
		logs, _, cancel, err := start(t, wrong)
		defer cancel()
		require.Error(t, err)
		require.ErrorContains(t, err, "Authorization Violation")
		require.ErrorContains(t, err, "user=orchestrator")
		require.ErrorContains(t, err, ns.URL)
		for _, secret := range []string{right, wrong} {
			require.NotContains(t, err.Error(), secret)
			require.NotContains(t, logs.String(), secret)
		}
		require.Contains(t, logs.String(), `"method":"user"`, "the start log says how it authenticates")
	})
	t.Run("right password", func(t *testing.T) {
		logs, m, cancel, err := start(t, right)
		defer cancel()
		require.NoError(t, err)
		require.Contains(t, m, "cp_nats_errors_total")
		for _, out := range []string{logs.String(), m} {
			require.NotContains(t, out, right)
		}
	})
}

// An act the server's permissions refuse after the start (here the seeder publishing a tick) is
// not silent: it is logged as a nats error with its kind and counted in cp_nats_errors_total.
func TestRefusedActIsLoggedAndCounted(t *testing.T) {
	t.Parallel()
	bus := eventstest.NewSecuredBus(t)
	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	counted := make(chan float64, 1)
	go func() {
		errc <- service.Start(ctx, service.Options{Name: events.ServiceSeeder, NoDatabase: true, NoHTTP: true,
			Common: config.Common{NATSURL: bus.Server.URL, ShutdownGrace: 5 * time.Second,
				NATS: config.NATSAuth{NkeySeedFile: bus.Auth.Keys.SeedFile(events.ServiceSeeder)}},
			Logger: slog.New(slog.NewJSONHandler(logs, nil))},
			func(ctx context.Context, p *service.Process) error {
				if err := p.NC.Publish(events.TickSubject(events.ModuleStraux), []byte("{}")); err != nil {
					return err
				}
				if err := p.NC.Flush(); err != nil {
					return err
				}
				// The error handler runs on nats.go's callback goroutine: wait for its count.
				for metrictest.Value(t, p.Registry, "cp_nats_errors_total", "kind", "permission") == 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(10 * time.Millisecond):
					}
				}
				counted <- metrictest.Value(t, p.Registry, "cp_nats_errors_total", "kind", "permission")
				<-ctx.Done()
				return nil
			})
	}()
	select {
	case n := <-counted:
		require.Equal(t, 1.0, n)
	case err := <-errc:
		t.Fatalf("service stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the refused publish was not counted")
	}
	require.Contains(t, logs.String(), `"msg":"nats error","kind":"permission"`)
	require.Contains(t, logs.String(), events.TickSubject(events.ModuleStraux))
	cancel()
	require.NoError(t, <-errc)
}
