package service_test

import (
	"bytes"
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
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// syncBuffer is a log sink the service writes while the test reads.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

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

	start := func(t *testing.T, password string) (*syncBuffer, string, context.CancelFunc, error) {
		pwFile := filepath.Join(t.TempDir(), "nats_password")
		require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
		l := config.NewLoader(func(k string) (string, bool) {
			v, ok := map[string]string{"DATABASE_URL": "postgres://unused/x", "NATS_URL": ns.URL,
				"NATS_USER": "orchestrator", "NATS_PASSWORD_FILE": pwFile, "HTTP_ADDR": "127.0.0.1:0"}[k]
			return v, ok
		})
		common := l.LoadCommon("127.0.0.1:0")
		require.NoError(t, l.Err())
		logs := newSyncBuffer()
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
