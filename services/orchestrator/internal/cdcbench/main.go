// Command cdcbench measures the change relay as it runs in production: the built orchestrator
// binary in a process of its own, against a private Postgres cluster (libs/pgcluster) and an
// embedded JetStream server. By default: 100,000 rows as 100 transactions of 1,000 rows, then
// 5,000 single-row transactions at a steady rate. It prints a line per phase, the relay
// process's peak RSS (VmHWM), then
//
//	BENCH cdc events=<n> seconds=<s> events_per_s=<x> p50_ms=<a> p99_ms=<b> lost=<l> duplicates=<d>
//
// where events is every event relayed, seconds the whole run, events_per_s the batch phase's
// throughput (first commit to the last event stored), p50/p99 the steady phase's commit-to-stored
// latency (as a consumer of CP_CDC sees it), and lost/duplicates what the stream holds against
// what was committed. Run it with `make bench-cdc`; `make bench-cdc-large` runs the large cases
// (one 1,000,000-row transaction; a transaction of rows of several MB, claim-checked).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

type options struct {
	batchTxs, batchRows   int
	rowBytes              int
	steadyTxs, steadyRate int
	inFlight              int
	orchestrator          string
	verbose               bool
}

func main() {
	var o options
	flag.IntVar(&o.batchTxs, "batch-txs", 100, "transactions in the batch phase")
	flag.IntVar(&o.batchRows, "batch-rows", 1000, "rows per batch transaction")
	flag.IntVar(&o.rowBytes, "row-bytes", 0, "pad each batch row with this many bytes of raw JSON (rows of several MB are claim-checked)")
	flag.IntVar(&o.steadyTxs, "steady-txs", 5000, "single-row transactions in the steady phase")
	flag.IntVar(&o.steadyRate, "steady-rate", 500, "steady transactions per second")
	flag.IntVar(&o.inFlight, "in-flight", 8192, "relay in-flight bound (CDC_MAX_IN_FLIGHT)")
	flag.StringVar(&o.orchestrator, "orchestrator", "", "orchestrator binary to run (default: go build it)")
	flag.BoolVar(&o.verbose, "v", false, "show the orchestrator's log")
	flag.Parse()
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "cdcbench:", err)
		os.Exit(1)
	}
}

// arrivals records the commit-to-stored latency of each steady-phase event, as a consumer of
// CP_CDC receives it.
type arrivals struct {
	mu      sync.Mutex
	n       int
	last    time.Time
	latency []time.Duration
}

func (a *arrivals) add(data []byte) {
	now := time.Now()
	var rc struct {
		CommitTime time.Time `json:"commitTime"`
	}
	ok := json.Unmarshal(data, &rc) == nil
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	a.last = now
	if ok {
		a.latency = append(a.latency, now.Sub(rc.CommitTime))
	}
}

func (a *arrivals) count() (int, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n, a.last
}

func bench(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
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
	bin := o.orchestrator
	if bin == "" {
		bin = filepath.Join(dir, "orchestrator")
		build := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "cryptopill.dev/jobs/services/orchestrator")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build the orchestrator: %w", err)
		}
	}

	// Postgres: a private cluster like the test kit's. synchronous_commit on (the cluster is
	// otherwise the test kit's, fsync off): with it off, WAL reaches the walsender only at the
	// WAL writer's next round, up to 200 ms later.
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

	// JetStream: an embedded server with file storage, reached over TCP by the orchestrator.
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server not ready")
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// The relay: the orchestrator binary, only the relay's table in its publication.
	logPath := filepath.Join(dir, "orchestrator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	orch := exec.Command(bin)
	orch.Env = append(os.Environ(),
		"RUN_JOBS=1", "CP_ENV=dev", "DATABASE_URL="+url, "NATS_URL="+ns.ClientURL(), "HTTP_ADDR=127.0.0.1:0",
		"MIGRATE_ON_START=0", "LOG_LEVEL=info", "CDC_TABLES=market.account_trades", "CDC_MAX_IN_FLIGHT="+strconv.Itoa(o.inFlight))
	orch.Stdout, orch.Stderr = logFile, logFile
	if o.verbose {
		orch.Stderr = os.Stderr
	}
	if err := orch.Start(); err != nil {
		return fmt.Errorf("start the orchestrator: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- orch.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = orch.Process.Kill()
			<-exited
		}
	}()
	fail := func(err error) error {
		return fmt.Errorf("%w (orchestrator log: %s)", err, tail(logPath))
	}
	for deadline := time.Now().Add(time.Minute); ; {
		var active bool
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cp_relay' AND active)`).Scan(&active)
		if err == nil && active {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			return fail(fmt.Errorf("orchestrator exited: %v", err))
		default:
		}
		if time.Now().After(deadline) {
			return fail(errors.New("the relay did not start streaming within a minute"))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The batch phase is timed by the stream's message count (polled: a consumer would double
	// the server's work while it is measured); the steady phase by a consumer of CP_CDC that
	// times each event's arrival.
	batchEvents := o.batchTxs * o.batchRows
	stream, err := js.Stream(ctx, events.StreamCDC)
	if err != nil {
		return err
	}
	waitCount := func(n int, timeout time.Duration) (time.Time, error) {
		deadline := time.Now().Add(timeout)
		for {
			info, err := stream.Info(ctx)
			if err == nil && info.State.Msgs >= uint64(n) {
				return time.Now(), nil
			}
			if time.Now().After(deadline) {
				return time.Time{}, fail(fmt.Errorf("fewer than %d events stored after %s", n, timeout))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	arr := &arrivals{}
	waitStored := func(n int, timeout time.Duration) error {
		deadline := time.Now().Add(timeout)
		for {
			if got, _ := arr.count(); got >= n {
				return nil
			}
			if time.Now().After(deadline) {
				got, _ := arr.count()
				return fail(fmt.Errorf("only %d of %d steady events stored after %s", got, n, timeout))
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Batch phase.
	raw := "NULL"
	if o.rowBytes > 0 {
		raw = fmt.Sprintf(`jsonb_build_object('pad', repeat('x', %d), 'g', g)`, o.rowBytes)
	}
	insert := `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker, raw)
		SELECT 'BTCUSDT', g, g, 100.5, 0.25, 25.125, 0.001, 'BNB', now(), g % 2 = 0, false, ` + raw + ` FROM generate_series($1::bigint, $2::bigint) g`
	batchStart := time.Now()
	for i := 0; i < o.batchTxs; i++ {
		if _, err := pool.Exec(ctx, insert, i*o.batchRows+1, (i+1)*o.batchRows); err != nil {
			return fmt.Errorf("batch insert: %w", err)
		}
	}
	committed := time.Since(batchStart)
	lastStored, err := waitCount(batchEvents, 10*time.Minute)
	if err != nil {
		return err
	}
	batchSeconds := lastStored.Sub(batchStart).Seconds()
	batchRate := float64(batchEvents) / batchSeconds
	fmt.Printf("phase batch: txs=%d rows=%d row_bytes=%d committed_in_s=%.3f seconds=%.3f events_per_s=%.0f\n",
		o.batchTxs, batchEvents, o.rowBytes, committed.Seconds(), batchSeconds, batchRate)

	// Steady phase: single-row transactions at a fixed rate.
	oc, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(batchEvents) + 1,
	})
	if err != nil {
		return err
	}
	cc, err := oc.Consume(func(m jetstream.Msg) { arr.add(m.Data()) })
	if err != nil {
		return err
	}
	defer cc.Stop()
	steadyStart := time.Now()
	interval := time.Second / time.Duration(max(o.steadyRate, 1))
	single := `INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission, commission_asset, trade_time, is_buyer, is_maker)
		VALUES ('ETHUSDT', $1, $1, 3000.5, 0.1, 300.05, 0.001, 'BNB', now(), true, true)`
	for i := 0; i < o.steadyTxs; i++ {
		due := steadyStart.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if _, err := pool.Exec(ctx, single, batchEvents+i+1); err != nil {
			return fmt.Errorf("steady insert: %w", err)
		}
	}
	total := batchEvents + o.steadyTxs
	if err := waitStored(o.steadyTxs, 2*time.Minute); err != nil {
		return err
	}
	arr.mu.Lock()
	steadyLat := sorted(arr.latency)
	arr.mu.Unlock()
	if o.steadyTxs > 0 {
		fmt.Printf("phase steady: txs=%d rate_per_s=%d seconds=%.3f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
			o.steadyTxs, o.steadyRate, time.Since(steadyStart).Seconds(), pct(steadyLat, 50), pct(steadyLat, 99), pct(steadyLat, 100))
	}

	// The relay process's own memory: its peak resident set over the whole run.
	hwm, rss, err := memory(orch.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("phase relay: pid=%d peak_rss_mb=%.1f rss_mb=%.1f\n", orch.Process.Pid, float64(hwm)/(1<<20), float64(rss)/(1<<20))
	_ = orch.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		stopped = true
	case <-time.After(30 * time.Second):
		return fail(errors.New("the orchestrator did not stop within 30 s of SIGTERM"))
	}

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

// memory reads a process's peak and current resident set (VmHWM, VmRSS) in bytes.
func memory(pid int) (hwm, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read the relay's memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s %q: %w", pid, k, v, err)
		}
		if k == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmHWM", pid)
	}
	return hwm, rss, nil
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return path + ":\n" + string(b)
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
// Claim-checked payloads are resolved from the claim bucket.
func audit(ctx context.Context, js jetstream.JetStream, total int) (lost, dups, n int, err error) {
	s, err := js.Stream(ctx, events.StreamCDC)
	if err != nil {
		return 0, 0, 0, err
	}
	n = int(s.CachedInfo().State.Msgs)
	claims, err := events.NewClaimCheck(ctx, js, events.ClaimConfig{})
	if err != nil {
		return 0, 0, 0, err
	}
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
			data, err := claims.Resolve(ctx, m.Headers(), m.Data())
			if err != nil {
				return 0, 0, 0, err
			}
			// Only the trade id is needed: a plain JSON read of the RowChange (protojson would
			// take minutes over a million events).
			var rc struct {
				NewValues struct {
					TradeID struct {
						Text string `json:"text"`
					} `json:"trade_id"`
				} `json:"newValues"`
			}
			if err := json.Unmarshal(data, &rc); err != nil {
				return 0, 0, 0, fmt.Errorf("audit %s seq %d: %w", m.Subject(), read, err)
			}
			id, _ := strconv.Atoi(rc.NewValues.TradeID.Text)
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
