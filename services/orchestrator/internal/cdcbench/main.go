// Command cdcbench measures the change relay: a private Postgres cluster (libs/pgcluster) and an
// embedded JetStream server, 100,000 rows as 100 transactions of 1,000 rows, then 5,000
// single-row transactions at a steady rate. It prints a line per phase, then
//
//	BENCH cdc events=<n> seconds=<s> events_per_s=<x> p50_ms=<a> p99_ms=<b> lost=<l> duplicates=<d>
//
// where events is every event relayed, seconds the whole run, events_per_s the batch phase's
// throughput (first commit to last PubAck), p50/p99 the steady phase's commit-to-PubAck latency,
// and lost/duplicates what the stream holds against what was committed. Run it with
// `make bench-cdc`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
	"cryptopill.dev/jobs/services/orchestrator/internal/bus"
	"cryptopill.dev/jobs/services/orchestrator/internal/relay"
)

func main() {
	var (
		batchTxs   = flag.Int("batch-txs", 100, "transactions in the batch phase")
		batchRows  = flag.Int("batch-rows", 1000, "rows per batch transaction")
		steadyTxs  = flag.Int("steady-txs", 5000, "single-row transactions in the steady phase")
		steadyRate = flag.Int("steady-rate", 500, "steady transactions per second")
		inFlight   = flag.Int("in-flight", 8192, "relay in-flight bound")
		verbose    = flag.Bool("v", false, "log the relay")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	)
	flag.Parse()
	profileBatch = func() func() { return func() {} }
	if *cpuProfile != "" {
		profileBatch = func() func() {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				fmt.Fprintln(os.Stderr, "cdcbench:", err)
				return func() {}
			}
			_ = pprof.StartCPUProfile(f)
			return func() { pprof.StopCPUProfile(); _ = f.Close() }
		}
	}
	if err := bench(*batchTxs, *batchRows, *steadyTxs, *steadyRate, *inFlight, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "cdcbench:", err)
		os.Exit(1)
	}
}

// profileBatch starts a CPU profile of the batch phase (-cpuprofile) and returns its stop.
var profileBatch func() func()

// recorder keeps each event's commit-to-PubAck latency, in acknowledgement order.
type recorder struct {
	mu      sync.Mutex
	seen    map[string]bool
	acked   []time.Time
	latency []time.Duration
}

// timedPublisher wraps the relay's publisher to time every PubAck.
type timedPublisher struct {
	inner relay.Publisher
	rec   *recorder
}

func (p timedPublisher) PublishAsync(ctx context.Context, c *relay.Change, done func(error)) error {
	id, commit := c.ID, c.CommitTime
	return p.inner.PublishAsync(ctx, c, func(err error) {
		if err == nil {
			now := time.Now()
			p.rec.mu.Lock()
			if !p.rec.seen[id] { // a replay after a reconnect is timed once
				p.rec.seen[id] = true
				p.rec.acked = append(p.rec.acked, now)
				p.rec.latency = append(p.rec.latency, now.Sub(commit))
			}
			p.rec.mu.Unlock()
		}
		done(err)
	})
}

func (p timedPublisher) Stored(ctx context.Context, tables []string) (relay.Stored, error) {
	return p.inner.Stored(ctx, tables)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latency)
}

func bench(batchTxs, batchRows, steadyTxs, steadyRate, inFlight int, verbose bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	dir, err := os.MkdirTemp("", "cdcbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}

	// Postgres: a private cluster like the test kit's.
	// synchronous_commit on (the cluster is otherwise the test kit's, fsync off): with it off,
	// WAL reaches the walsender only at the WAL writer's next round, up to 200 ms later.
	scratch, err := pgtest.StartScratch(ctx, pgtest.ScratchConfig{Name: "cdcbench", Settings: map[string]string{"synchronous_commit": "on"}})
	if err != nil {
		return err
	}
	defer func() { _ = scratch.Close() }()
	url := scratch.URL
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()

	// JetStream: an embedded server with file storage.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := events.NewTopology(events.TopologyConfig{}).Apply(ctx, js); err != nil {
		return err
	}

	rec := &recorder{seen: map[string]bool{}}
	pub, err := bus.New(nc, bus.Config{MaxInFlight: inFlight})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	r, err := relay.New(relay.Config{
		ConnString:  url,
		Pool:        pool,
		Publisher:   timedPublisher{inner: pub, rec: rec},
		Tables:      []string{"market.account_trades"},
		MaxInFlight: inFlight,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	rctx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(rctx) }()
	for r.State() != relay.StateStreaming {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(10 * time.Millisecond)
	}

	waitAcked := func(n int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for rec.count() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("only %d of %d events acknowledged after %s", rec.count(), n, timeout)
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}

	// Batch phase.
	insert := `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		SELECT 'BTCUSDT', g, g, 100.5, 0.25, 25.125, 0.001, 'BNB', now(), g % 2 = 0, false FROM generate_series($1::bigint, $2::bigint) g`
	batchEvents := batchTxs * batchRows
	stopProfile := profileBatch()
	batchStart := time.Now()
	for i := 0; i < batchTxs; i++ {
		if _, err := pool.Exec(ctx, insert, i*batchRows+1, (i+1)*batchRows); err != nil {
			return fmt.Errorf("batch insert: %w", err)
		}
	}
	committed := time.Since(batchStart)
	if err := waitAcked(batchEvents, 5*time.Minute); err != nil {
		return err
	}
	stopProfile()
	rec.mu.Lock()
	lastAck := rec.acked[batchEvents-1]
	batchLat := sorted(rec.latency[:batchEvents])
	rec.mu.Unlock()
	batchSeconds := lastAck.Sub(batchStart).Seconds()
	batchRate := float64(batchEvents) / batchSeconds
	fmt.Printf("phase batch: txs=%d rows=%d committed_in_s=%.3f seconds=%.3f events_per_s=%.0f p50_ms=%.1f p99_ms=%.1f\n",
		batchTxs, batchEvents, committed.Seconds(), batchSeconds, batchRate, pct(batchLat, 50), pct(batchLat, 99))

	// Steady phase: single-row transactions at a fixed rate.
	steadyStart := time.Now()
	interval := time.Second / time.Duration(steadyRate)
	single := `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		VALUES ('ETHUSDT', $1, $1, 3000.5, 0.1, 300.05, 0.001, 'BNB', now(), true, true)`
	for i := 0; i < steadyTxs; i++ {
		due := steadyStart.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if _, err := pool.Exec(ctx, single, batchEvents+i+1); err != nil {
			return fmt.Errorf("steady insert: %w", err)
		}
	}
	total := batchEvents + steadyTxs
	if err := waitAcked(total, 2*time.Minute); err != nil {
		return err
	}
	steadySeconds := time.Since(steadyStart).Seconds()
	rec.mu.Lock()
	steadyLat := sorted(rec.latency[batchEvents:total])
	rec.mu.Unlock()
	fmt.Printf("phase steady: txs=%d rate_per_s=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
		steadyTxs, steadyRate, steadySeconds, pct(steadyLat, 50), pct(steadyLat, 99), pct(steadyLat, 100))

	stopRelay()
	if err := <-relayDone; err != nil {
		return err
	}
	cctx, c := context.WithTimeout(ctx, 10*time.Second)
	_ = pub.Close(cctx)
	c()

	// What the stream holds against what was committed.
	lost, dups, n, err := audit(ctx, js, total)
	if err != nil {
		return err
	}
	fmt.Printf("phase audit: stream_messages=%d expected=%d lost=%d duplicates=%d\n", n, total, lost, dups)
	fmt.Printf("BENCH cdc events=%d seconds=%.3f events_per_s=%.0f p50_ms=%.1f p99_ms=%.1f lost=%d duplicates=%d\n",
		n-dups, time.Since(began).Seconds(), batchRate, pct(steadyLat, 50), pct(steadyLat, 99), lost, dups)
	return nil
}

func sorted(d []time.Duration) []time.Duration {
	out := slices.Clone(d)
	slices.Sort(out)
	return out
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// audit reads CP_CDC and counts the committed trade ids that are missing and those stored twice.
func audit(ctx context.Context, js jetstream.JetStream, total int) (lost, dups, n int, err error) {
	s, err := js.Stream(ctx, events.StreamCDC)
	if err != nil {
		return 0, 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	n = int(info.State.Msgs)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, 0, 0, err
	}
	seen := make([]int, total+1)
	read := 0
	for read < n {
		batch, err := c.Fetch(min(n-read, 5000), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return 0, 0, 0, err
		}
		for m := range batch.Messages() {
			read++
			_, ev, err := events.Decode(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
			if err != nil {
				return 0, 0, 0, err
			}
			id, _ := strconv.Atoi(ev.Payload.(*eventsv1.RowChange).NewValues["trade_id"].GetText())
			if id >= 1 && id <= total {
				seen[id]++
			}
		}
		if err := batch.Error(); err != nil {
			return 0, 0, 0, err
		}
	}
	for id := 1; id <= total; id++ {
		switch {
		case seen[id] == 0:
			lost++
		case seen[id] > 1:
			dups += seen[id] - 1
		}
	}
	return lost, dups, n, nil
}
