package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/events/eventstest"
	"cryptopill.dev/jobs/libs/simex"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// doctorStack is a healthy environment: a migrated database with a replication slot and a recent
// tick plan, a JetStream server with the declared topology, and a simulated exchange whose clock
// is the doctor's.
type doctorStack struct {
	db    *pgtest.DB
	bus   *eventstest.Bus
	ex    *simex.Exchange
	exURL string
	now   time.Time
	vars  map[string]string
}

func newDoctorStack(t *testing.T, exchangeClock func() time.Time) *doctorStack {
	t.Helper()
	ctx := context.Background()
	now := doctorNow
	if exchangeClock == nil {
		exchangeClock = func() time.Time { return now }
	}
	s := &doctorStack{db: pgtest.NewDB(t), bus: eventstest.NewBus(t), now: now}
	slot := fmt.Sprintf("doctor_%d", time.Now().UnixNano())
	_, err := s.db.Pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = s.db.Pool.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
	})
	_, err = s.db.Pool.Exec(ctx, `INSERT INTO str_aux.tick_periods (period_start, period, status, universe_size, planned_symbols,
		rotation_rounds, planned_weight, tick_budget, planned_by) VALUES ($1, '40 seconds', 'done', 5, 5, 1, 30, 2800, 'test')`,
		now.Add(-50*time.Second))
	require.NoError(t, err)

	s.ex, err = simex.New(simex.Config{APIKey: "doctor-key-0001", APISecret: "doctor-secret", Now: exchangeClock})
	require.NoError(t, err)
	srv, err := simex.Listen("127.0.0.1:0", s.ex)
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(sctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s.exURL = srv.URL()
	s.vars = map[string]string{"DATABASE_URL": s.db.URL, "NATS_URL": s.bus.Server.URL, "BINANCE_BASE_URL": s.exURL,
		"BINANCE_API_KEY": "doctor-key-0001", "BINANCE_API_SECRET": "doctor-secret", "CDC_SLOT": slot, "CP_ENV": "dev"}
	return s
}

// doctorNow is the doctor's (and by default the exchange's) clock in these tests.
var doctorNow = time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC)

type doctorReport struct {
	Healthy  bool            `json:"healthy"`
	Findings []doctorFinding `json:"findings"`
}

func (s *doctorStack) run(t *testing.T, args ...string) (int, doctorReport, testEnv) {
	t.Helper()
	env := newTestEnv(s.vars)
	code := doctorCommand(context.Background(), append([]string{"--json"}, args...), env.cmdEnv, func() time.Time { return s.now })
	var r doctorReport
	require.NoError(t, json.Unmarshal(env.stdout.Bytes(), &r), env.stdout.String()+env.stderr.String())
	return code, r, env
}

func (r doctorReport) status(t *testing.T, check string) doctorFinding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Check == check {
			return f
		}
	}
	require.Failf(t, "no such finding", "%s in %+v", check, r.Findings)
	return doctorFinding{}
}

func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	s := newDoctorStack(t, nil)
	code, r, env := s.run(t)
	require.Equal(t, 0, code, env.stdout.String())
	require.True(t, r.Healthy)
	for _, f := range r.Findings {
		switch f.Check {
		case "postgres.replication_slot":
			require.Equal(t, statusWarn, f.Status, "a slot nobody streams is worth a warning, not a failure")
		default:
			require.Equal(t, statusOK, f.Status, "%+v", f)
		}
	}
	require.Contains(t, r.status(t, "straux.weight_budget").Detail, "period 40s: 5 of 5 symbols per tick, weight 30 of a 2800 tick budget")
	require.Contains(t, r.status(t, "exchange.api_key").Detail, "key doct…0001")
	require.NotContains(t, env.stdout.String(), "doctor-secret", "the secret is never printed")

	// The table says the same, one line per finding.
	table := newTestEnv(s.vars)
	require.Equal(t, 0, doctorCommand(context.Background(), nil, table.cmdEnv, func() time.Time { return s.now }))
	require.Regexp(t, `(?m)^nats\.topology\s+OK\s+6 streams, 4 durables and 1 bucket as declared`, table.stdout.String())
	require.Contains(t, table.stdout.String(), "findings: 0 failed, 1 warnings")
}

func TestDoctorChangedConsumerSetting(t *testing.T) {
	t.Parallel()
	s := newDoctorStack(t, nil)
	decl, _ := s.bus.Topology.Consumer(events.ConsumerCinimportChanges)
	changed := decl.Config
	changed.MaxAckPending = 7
	_, err := s.bus.JS.UpdateConsumer(context.Background(), decl.Stream, changed)
	require.NoError(t, err)
	code, r, _ := s.run(t)
	require.Equal(t, 1, code)
	f := r.status(t, "nats.consumer CP_CDC/"+events.ConsumerCinimportChanges)
	require.Equal(t, statusFail, f.Status)
	require.Equal(t, "max_ack_pending is 7, declared 1000", f.Detail)
	require.Contains(t, f.Fix, "restart cinimport")
}

func TestDoctorMissingSlot(t *testing.T) {
	t.Parallel()
	s := newDoctorStack(t, nil)
	s.vars["CDC_SLOT"] = "doctor_no_such_slot"
	code, r, _ := s.run(t)
	require.Equal(t, 1, code)
	f := r.status(t, "postgres.replication_slot")
	require.Equal(t, statusFail, f.Status)
	require.Contains(t, f.Detail, "replication slot doctor_no_such_slot is missing")
	require.Contains(t, f.Fix, "RUN_JOBS=1")
}

func TestDoctorUnreachableExchange(t *testing.T) {
	t.Parallel()
	s := newDoctorStack(t, nil)
	code, r, _ := s.run(t, "--exchange-url", "http://127.0.0.1:1")
	require.Equal(t, 1, code)
	f := r.status(t, "exchange.reachable")
	require.Equal(t, statusFail, f.Status)
	require.Contains(t, f.Detail, "http://127.0.0.1:1")
	require.Contains(t, f.Fix, "BINANCE_BASE_URL")
	require.Equal(t, statusSkip, r.status(t, "exchange.clock_skew").Status)

	// A banned IP is unreachable too, and says so.
	s.ex.ForceBan(time.Minute)
	code, r, _ = s.run(t)
	require.Equal(t, 1, code)
	require.Contains(t, r.status(t, "exchange.reachable").Detail, fmt.Sprintf("%d", http.StatusTeapot))
}

func TestDoctorSkewedClock(t *testing.T) {
	t.Parallel()
	// The exchange's clock runs 7 s ahead of the doctor's; recvWindow is 5 s.
	ahead := doctorNow.Add(7 * time.Second)
	s := newDoctorStack(t, func() time.Time { return ahead })
	code, r, _ := s.run(t)
	require.Equal(t, 1, code)
	f := r.status(t, "exchange.clock_skew")
	require.Equal(t, statusFail, f.Status)
	require.Contains(t, f.Detail, "local clock is 7s off the exchange's, at least recvWindow 5s")
	require.Contains(t, f.Fix, "sync the host clock")
	code, r, _ = s.run(t, "--recv-window", "10s")
	require.Equal(t, statusWarn, r.status(t, "exchange.clock_skew").Status)
	require.Equal(t, 0, code)
}

func TestDoctorWrongSecretAndStaleTicks(t *testing.T) {
	t.Parallel()
	s := newDoctorStack(t, nil)
	s.vars["BINANCE_API_SECRET"] = "not-the-secret"
	s.now = s.now.Add(10 * time.Minute) // the newest period is 15 periods old
	code, r, env := s.run(t)
	require.Equal(t, 1, code)
	key := r.status(t, "exchange.api_key")
	require.Equal(t, statusFail, key.Status)
	require.Contains(t, key.Fix, "BINANCE_API_SECRET does not belong to BINANCE_API_KEY")
	require.NotContains(t, env.stdout.String(), "not-the-secret")
	ticks := r.status(t, "straux.weight_budget")
	require.Equal(t, statusFail, ticks.Status)
	require.True(t, strings.Contains(ticks.Detail, "no ticks arrive"), ticks.Detail)
}
