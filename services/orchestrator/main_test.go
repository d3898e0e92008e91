package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/natsauth/natsauthtest"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/metrictest"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/ticks"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestGateExitsZeroWithoutTouchingAnything(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"", "0", "true", "yes", " 1", "2"} {
		vars := map[string]string{
			// Unreachable on purpose: the gate must not try them.
			"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?connect_timeout=1",
			"NATS_URL":     "nats://127.0.0.1:1",
		}
		if v != "" {
			vars["RUN_JOBS"] = v
		}
		var buf bytes.Buffer
		start := time.Now()
		code := orchestrate(env(vars), slog.New(slog.NewJSONHandler(&buf, nil)))
		require.Equal(t, 0, code, "RUN_JOBS=%q", v)
		require.Less(t, time.Since(start), time.Second)
		require.Contains(t, buf.String(), "background workers disabled: RUN_JOBS is not 1; set RUN_JOBS=1 to enable them")
		require.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("\n")), "one log line: %s", buf.String())
	}
}

// The relay's own URL (its REPLICATION role) comes from CDC_DATABASE_URL or a mounted file, and
// falls back to DATABASE_URL; setting both forms is an error naming both, never the secret.
func TestConfigRelayURL(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://o:pw@x/y"}))
	require.NoError(t, err)
	require.Equal(t, "postgres://o:pw@x/y", cfg.CDCDatabaseURL)
	file := filepath.Join(t.TempDir(), "cdc_url")
	require.NoError(t, os.WriteFile(file, []byte("postgres://cp_replication:s3cret@x/y\n"), 0o600))
	cfg, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://o:pw@x/y", "CDC_DATABASE_URL_FILE": file}))
	require.NoError(t, err)
	require.Equal(t, "postgres://cp_replication:s3cret@x/y", cfg.CDCDatabaseURL)
	_, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://o:pw@x/y", "CDC_DATABASE_URL_FILE": file,
		"CDC_DATABASE_URL": "postgres://cp_replication:s3cret@x/y"}))
	require.ErrorContains(t, err, "both CDC_DATABASE_URL and CDC_DATABASE_URL_FILE")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestConfigFloorsAndValidation(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "STR_AUX_RUNNER_INTERVAL_MS": "1000"}))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, cfg.StrauxInterval, "max(5000, STR_AUX_RUNNER_INTERVAL_MS)")
	require.Equal(t, "str-aux-runner", cfg.RunnerSessionID)
	require.Equal(t, 15*time.Minute, cfg.CinImportInterval)
	cfg, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y"}))
	require.NoError(t, err)
	require.Equal(t, 40*time.Second, cfg.StrauxInterval)
	require.Equal(t, int64(64<<20), cfg.CDCMaxInFlightBytes)
	require.False(t, cfg.CDCRecreateLostSlot)
	cfg, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CDC_MAX_IN_FLIGHT_BYTES": "8388608", "CDC_RECREATE_LOST_SLOT": "1"}))
	require.NoError(t, err)
	require.Equal(t, int64(8<<20), cfg.CDCMaxInFlightBytes)
	require.True(t, cfg.CDCRecreateLostSlot)
	_, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CDC_MAX_IN_FLIGHT_BYTES": "64MB"}))
	require.ErrorContains(t, err, "CDC_MAX_IN_FLIGHT_BYTES")

	require.Equal(t, 5*time.Minute, cfg.CDCDuplicateWindow)

	_, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CDC_TABLES": "nodot", "CDC_STATUS_INTERVAL": "1m"}))
	require.ErrorContains(t, err, "CDC_TABLES")
	require.ErrorContains(t, err, "CDC_STATUS_INTERVAL")

	cfg, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CDC_DUPLICATE_WINDOW": "20s"}))
	require.NoError(t, err)
	require.Equal(t, 20*time.Second, cfg.CDCDuplicateWindow)
	cdc, _ := topology(cfg).Stream(events.StreamCDC)
	require.Equal(t, 20*time.Second, cdc.Duplicates, "CP_CDC's window comes from CDC_DUPLICATE_WINDOW")
	require.Equal(t, events.DefaultClaimMaxBytes, topology(cfg).Buckets[0].MaxBytes)
	cfg, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CLAIMS_MAX_MB": "1024"}))
	require.NoError(t, err)
	require.Equal(t, events.ClaimBucket, topology(cfg).Buckets[0].Bucket)
	require.EqualValues(t, 1<<30, topology(cfg).Buckets[0].MaxBytes, "CP_CLAIMS's bound comes from CLAIMS_MAX_MB")
	_, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CLAIMS_MAX_MB": "-2"}))
	require.ErrorContains(t, err, "CLAIMS_MAX_MB")
	for _, bad := range []string{"2s", "1s", "169h", "soon", "0s"} { // not longer than the 2s status interval, past the max age, unparsable
		_, err = LoadConfig(env(map[string]string{"DATABASE_URL": "postgres://x/y", "CDC_DUPLICATE_WINDOW": bad}))
		require.ErrorContains(t, err, "CDC_DUPLICATE_WINDOW", bad)
	}
}

type bundle struct {
	db *pgtest.DB
	// nats runs the shipped permissions: the orchestrator under test connects as its own
	// identity, js is the operator's.
	nats *natsauthtest.Server
	js   jetstream.JetStream
	// The orchestrator's roles, as a deployment runs it (migration 00016): a login role of
	// cp_orchestrator, and cp_replication for the change relay.
	roleURL, relayURL string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := pgtest.NewDB(t)
	ns := natsauthtest.NewServer(t)
	js, err := jetstream.New(ns.Connect(t, natsauth.Operator))
	require.NoError(t, err)
	t.Cleanup(func() {
		if !t.Failed() {
			require.Empty(t, ns.Violations(), "the orchestrator needed no act its permissions refuse")
		}
	})
	return &bundle{db: d, nats: ns, js: js, roleURL: d.RoleURL(t, "cp_orchestrator"), relayURL: d.RoleURL(t, pgtest.ReplicationRole)}
}

// config is an orchestrator configuration with one-second ticks for both modules.
func (b *bundle) config() Config {
	return Config{
		Common: config.Common{
			Env:           config.EnvDev,
			DatabaseURL:   b.roleURL,
			NATSURL:       b.nats.URL,
			NATS:          config.NATSAuth{NkeySeedFile: b.nats.Keys.SeedFile(events.ServiceOrchestrator)},
			HTTPAddr:      "127.0.0.1:0",
			LogLevel:      "info",
			ShutdownGrace: 10 * time.Second,
			NATSReplicas:  1,
		},
		StrauxInterval:           time.Second,
		RunnerSessionID:          "str-aux-runner",
		CinImportInterval:        time.Second,
		CinImportRunnerSessionID: "cin-import-runner",
		FlagsBucket:              "CP_FLAGS",
		CDCEnabled:               true,
		CDCDatabaseURL:           b.relayURL,
		CDCSlot:                  "cp_relay_" + b.db.Name,
		CDCPublication:           "cp_cdc",
		CDCTables:                []string{"settings.coin_universe", "cin_aux.rt_session", "market.account_trades"},
		CDCMaxInFlight:           1024,
		CDCMaxInFlightBytes:      16 << 20,
		CDCStatusInterval:        200 * time.Millisecond,
		CDCDuplicateWindow:       5 * time.Minute,
	}
}

func logger(t *testing.T, name string) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name(), "orchestrator", name)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start runs an orchestrator until the returned stop is called (or the test ends). It returns
// once the orchestrator runs: connected, its streams declared.
func (b *bundle) start(t *testing.T, name string, cfg Config) (stop func()) {
	t.Helper()
	_, stop = b.startProcess(t, name, cfg)
	return stop
}

// startProcess is start, also returning the running service's Process.
func (b *bundle) startProcess(t *testing.T, name string, cfg Config) (proc *service.Process, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	running := make(chan *service.Process, 1)
	go func() {
		done <- service.Start(ctx, service.Options{Name: events.ServiceOrchestrator, Common: cfg.Common, Logger: logger(t, name), Topology: topology(cfg)},
			func(ctx context.Context, p *service.Process) error {
				running <- p
				return run(ctx, p, cfg)
			})
	}()
	select {
	case proc = <-running:
	case err := <-done:
		cancel()
		t.Fatalf("orchestrator %s did not start: %v", name, err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("orchestrator %s did not start", name)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Error("orchestrator did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return proc, stop
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// read returns every event on subject in stream order.
func read(t *testing.T, js jetstream.JetStream, stream, subject string) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	require.NoError(t, err)
	n := int(info.State.Subjects[subject])
	if n == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	require.NoError(t, err)
	var out []events.Event
	for len(out) < n {
		batch, err := c.Fetch(n-len(out), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			require.NoError(t, err)
			out = append(out, ev)
		}
		require.NoError(t, batch.Error())
	}
	return out
}

func tickStarts(t *testing.T, js jetstream.JetStream, module string) []time.Time {
	var out []time.Time
	for _, ev := range read(t, js, events.StreamTicks, events.TickSubject(module)) {
		tick := ev.Payload.(*eventsv1.Tick)
		require.Equal(t, module, tick.Module)
		require.Equal(t, time.Second, tick.Period.AsDuration())
		require.Equal(t, events.TickID(module, tick.PeriodStart.AsTime()), ev.ID)
		out = append(out, tick.PeriodStart.AsTime())
	}
	return out
}

// requireOnePerPeriod checks consecutive, aligned, distinct period starts.
func requireOnePerPeriod(t *testing.T, starts []time.Time) {
	t.Helper()
	for i, s := range starts {
		require.Equal(t, ticks.PeriodStart(s, time.Second), s, "aligned to the wall clock")
		if i > 0 {
			require.Equal(t, time.Second, s.Sub(starts[i-1]), "one tick per period, none missing: %v", starts)
		}
	}
}

func TestTwoOrchestratorsPutOneTickPerPeriod(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config()
	cfg.CDCDuplicateWindow = 30 * time.Second
	stopA := b.start(t, "a", cfg)
	stopB := b.start(t, "b", cfg)
	cdc, err := b.js.Stream(context.Background(), events.StreamCDC)
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, cdc.CachedInfo().Config.Duplicates, "CP_CDC as the orchestrator (its owner) declares it")
	waitFor(t, 20*time.Second, "five straux ticks", func() bool { return len(tickStarts(t, b.js, events.ModuleStraux)) >= 5 })
	stopA()
	stopB()
	for _, module := range []string{events.ModuleStraux, events.ModuleCinimport} {
		starts := tickStarts(t, b.js, module)
		require.GreaterOrEqual(t, len(starts), 4, module)
		requireOnePerPeriod(t, starts)
	}
	ev := read(t, b.js, events.StreamTicks, events.TickSubject(events.ModuleStraux))[0]
	tick := ev.Payload.(*eventsv1.Tick)
	require.Equal(t, "str-aux-runner", tick.RunnerSessionId)
	require.NotEmpty(t, tick.OrchestratorSession.GetId())
	require.NotZero(t, tick.OrchestratorSession.GetPid())
	require.Equal(t, "orchestrator", ev.Source)
}

func TestFreezeStopsAndResumesTicks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cfg := b.config()
	b.start(t, "a", cfg)
	waitFor(t, 20*time.Second, "two straux ticks", func() bool { return len(tickStarts(t, b.js, events.ModuleStraux)) >= 2 })

	kv, err := b.js.KeyValue(ctx, "CP_FLAGS")
	require.NoError(t, err)
	_, err = kv.PutString(ctx, "freeze.straux", "1")
	require.NoError(t, err)
	// Once the orchestrator has seen the flag (it mirrors it into ops.session_flags), no straux
	// tick goes out; the other module keeps ticking.
	mirrored := func(key, value string) func() bool {
		return func() bool {
			var v string
			err := b.db.Pool.QueryRow(ctx, `SELECT value FROM ops.session_flags WHERE key = $1`, key).Scan(&v)
			return err == nil && v == value
		}
	}
	waitFor(t, 5*time.Second, "the flag to be seen", mirrored("freeze.straux", "1"))
	frozenAt := len(tickStarts(t, b.js, events.ModuleStraux))
	cinAt := len(tickStarts(t, b.js, events.ModuleCinimport))
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, frozenAt, len(tickStarts(t, b.js, events.ModuleStraux)), "no straux tick while frozen")
	require.Greater(t, len(tickStarts(t, b.js, events.ModuleCinimport)), cinAt, "cinimport is not frozen")

	// The global flag freezes every module.
	_, err = kv.PutString(ctx, "freeze", "true")
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "the global flag to be seen", mirrored("freeze", "true"))
	cinAt = len(tickStarts(t, b.js, events.ModuleCinimport))
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, cinAt, len(tickStarts(t, b.js, events.ModuleCinimport)), "no cinimport tick while globally frozen")

	require.NoError(t, kv.Delete(ctx, "freeze"))
	_, err = kv.PutString(ctx, "freeze.straux", "0")
	require.NoError(t, err)
	// Cleared, ticks resume at once: the skipped current period's tick goes out.
	waitFor(t, 3*time.Second, "straux ticks to resume", func() bool { return len(tickStarts(t, b.js, events.ModuleStraux)) > frozenAt })
	waitFor(t, 3*time.Second, "cinimport ticks to resume", func() bool { return len(tickStarts(t, b.js, events.ModuleCinimport)) > cinAt })
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `SELECT count(*) FROM ops.session_flags WHERE key = 'freeze'`).Scan(&n))
	require.Zero(t, n, "a deleted flag leaves ops.session_flags")
}

func TestMissedPeriodsAreCounted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config()
	stop := b.start(t, "a", cfg)
	waitFor(t, 20*time.Second, "a straux tick", func() bool { return len(tickStarts(t, b.js, events.ModuleStraux)) >= 1 })
	stop()
	before := tickStarts(t, b.js, events.ModuleStraux)
	time.Sleep(3 * time.Second)

	// A fresh orchestrator finds the gap in the stream and counts it.
	var buf logtest.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var reg *service.Process
	var mu sync.Mutex
	go func() {
		done <- service.Start(ctx, service.Options{Name: events.ServiceOrchestrator, Common: cfg.Common, Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Topology: topology(cfg)},
			func(ctx context.Context, p *service.Process) error {
				mu.Lock()
				reg = p
				mu.Unlock()
				return run(ctx, p, cfg)
			})
	}()
	waitFor(t, 20*time.Second, "ticks after the gap", func() bool { return len(tickStarts(t, b.js, events.ModuleStraux)) > len(before) })
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, buf.String(), "periods without a tick while no orchestrator ran")
	mu.Lock()
	mfs, err := reg.Registry.Gather()
	mu.Unlock()
	require.NoError(t, err)
	var missed float64
	for _, mf := range mfs {
		if mf.GetName() == "cp_orchestrator_ticks_missed_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == events.ModuleStraux {
					missed = m.GetCounter().GetValue()
				}
			}
		}
	}
	require.GreaterOrEqual(t, missed, 2.0)
}

func universes(t *testing.T, js jetstream.JetStream) []*eventsv1.UniverseChanged {
	var out []*eventsv1.UniverseChanged
	for _, ev := range read(t, js, events.StreamUniverse, events.SubjectUniverseChanged) {
		out = append(out, ev.Payload.(*eventsv1.UniverseChanged))
	}
	return out
}

func TestUniverseChangesArePublished(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	pool := b.db.Pool
	_, err := pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('BTCUSDT', 'BTC', 'USDT'), ('ETHUSDT', 'ETH', 'USDT')`)
	require.NoError(t, err)
	cfg := b.config()
	cfg.StrauxInterval, cfg.CinImportInterval = time.Hour, time.Hour
	stop := b.start(t, "a", cfg)

	waitFor(t, 20*time.Second, "the universe at start", func() bool { return len(universes(t, b.js)) == 1 })
	u := universes(t, b.js)[0]
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, u.Enabled)
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, u.Added)
	require.Empty(t, u.Removed)
	version := u.Version

	// Wait for the relay to stream before changing anything: changes committed before its slot is
	// consistent are not seen (and the slot shows active while it is being created).
	waitFor(t, 20*time.Second, "the relay streaming", func() bool {
		return pgtest.SlotStreaming(ctx, pool, cfg.CDCSlot)
	})
	for i, step := range []struct {
		sql            string
		enabled, added []string
		removed        []string
	}{
		{`INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('SOLUSDT', 'SOL', 'USDT')`, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, []string{"SOLUSDT"}, nil},
		{`UPDATE settings.coin_universe SET enabled = false WHERE symbol = 'ETHUSDT'`, []string{"BTCUSDT", "SOLUSDT"}, nil, []string{"ETHUSDT"}},
		{`UPDATE settings.coin_universe SET enabled = NULL WHERE symbol = 'ETHUSDT'`, []string{"BTCUSDT", "ETHUSDT", "SOLUSDT"}, []string{"ETHUSDT"}, nil},
		{`DELETE FROM settings.coin_universe WHERE symbol = 'SOLUSDT'`, []string{"BTCUSDT", "ETHUSDT"}, nil, []string{"SOLUSDT"}},
	} {
		_, err := pool.Exec(ctx, step.sql)
		require.NoError(t, err)
		waitFor(t, 10*time.Second, "the change event", func() bool { return len(universes(t, b.js)) == i+2 })
		ev := read(t, b.js, events.StreamUniverse, events.SubjectUniverseChanged)[i+1]
		u := ev.Payload.(*eventsv1.UniverseChanged)
		// changed_at is the commit time, ce-time the publish time.
		latency := ev.Time.Sub(u.ChangedAt.AsTime())
		t.Logf("%s: published %s after commit", step.sql, latency)
		require.Less(t, latency, time.Second, "published within a second of the commit")
		require.Equal(t, step.enabled, u.Enabled, step.sql)
		require.Equal(t, step.added, u.Added, step.sql)
		require.Equal(t, step.removed, u.Removed, step.sql)
	}
	// Back to the start set: a new event (not dropped as a duplicate of the first), same version.
	require.Equal(t, version, universes(t, b.js)[4].Version)

	// A restart republishes the unchanged universe under the id it had at start: dropped.
	stop()
	n := len(universes(t, b.js))
	b.start(t, "b", cfg)
	time.Sleep(2 * time.Second)
	require.Equal(t, n, len(universes(t, b.js)), "an unchanged universe republished at start is de-duplicated")
}

// The orchestrator owns the claim bucket: a 2 MB row change (twice NATS' max_payload) reaches
// CP_CDC as a reference that any consumer binding the existing bucket resolves.
func TestOrchestratorRelaysARowOverMaxPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cfg := b.config()
	cfg.StrauxInterval, cfg.CinImportInterval = time.Hour, time.Hour
	b.start(t, "a", cfg)
	waitFor(t, 20*time.Second, "the relay streaming", func() bool {
		return pgtest.SlotStreaming(ctx, b.db.Pool, cfg.CDCSlot)
	})
	big := strings.Repeat("q", 2<<20)
	_, err := b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES ($1)`, big)
	require.NoError(t, err)
	_, err = b.db.Pool.Exec(ctx, `INSERT INTO cin_aux.rt_session (label) VALUES ('after')`)
	require.NoError(t, err)
	var msgs []*jetstream.RawStreamMsg
	waitFor(t, 30*time.Second, "both sessions in CP_CDC", func() bool {
		s, err := b.js.Stream(ctx, events.StreamCDC)
		if err != nil || s.CachedInfo().State.Msgs < 2 {
			return false
		}
		msgs = msgs[:0]
		for seq := uint64(1); seq <= s.CachedInfo().State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				return false
			}
			msgs = append(msgs, m)
		}
		return true
	})
	claims, err := events.NewClaimCheck(ctx, b.js, events.ClaimConfig{}) // binds: the orchestrator created it
	require.NoError(t, err)
	var labels []string
	for _, m := range msgs {
		data, err := claims.Resolve(ctx, m.Header, m.Data)
		require.NoError(t, err)
		_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: data})
		require.NoError(t, err)
		labels = append(labels, ev.Payload.(*eventsv1.RowChange).NewValues["label"].GetText())
	}
	require.Equal(t, []string{big, "after"}, labels)
	require.NotEmpty(t, msgs[0].Header.Get(events.HeaderClaim))
	require.Empty(t, msgs[1].Header.Get(events.HeaderClaim))
}

// TestMetricsExposition: the orchestrator's /metrics, scraped once it has published ticks of
// both modules and its relay streams, is lint-clean and has every series deploy/ names.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p, _ := b.startProcess(t, "a", b.config())
	waitFor(t, 30*time.Second, "ticks of both modules", func() bool {
		return len(tickStarts(t, b.js, events.ModuleStraux)) > 0 && len(tickStarts(t, b.js, events.ModuleCinimport)) > 0
	})
	waitFor(t, 30*time.Second, "the relay streaming", func() bool {
		return strings.Contains(string(metrictest.Scrape(t, p.HTTPAddr)), `cp_relay_state{slot="`+b.config().CDCSlot+`",state="streaming"} 1`)
	})
	metrictest.CheckExposition(t, metrictest.Scrape(t, p.HTTPAddr), "../../deploy/metrics/orchestrator.txt")
}
