package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
)

// scenario is one fault script over a running stack with the workload flowing. It returns what
// it injected (one line) and when the fault ended: recovery is measured from then.
type scenario struct {
	name string
	what string
	opts stackOpts
	run  func(ctx context.Context, f *fault) (injected string, err error)
}

// fault is what a scenario function gets: the stack, its seeded RNG and the mode.
type fault struct {
	s     *Stack
	w     *workload
	rng   *rand.Rand
	short bool
	log   []string
}

func (f *fault) record(format string, args ...any) {
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

// between is a random duration in [lo, hi).
func (f *fault) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)))
}

// times is n in full mode, 1 in short mode.
func (f *fault) times(n int) int {
	if f.short {
		return 1
	}
	return n
}

// suiteConfig are the knobs of the scenarios themselves.
type suiteConfig struct {
	// batchRows is the size of the trade batch pg-crash commits right before each crash.
	batchRows int
	// dupWindow is the CP_CDC duplicate window of nats-long-outage; NATS stays away 5 s longer.
	dupWindow time.Duration
}

func scenarios(cfg suiteConfig) []scenario {
	var out []scenario
	for _, svc := range services {
		out = append(out, scenario{
			name: "kill-" + svc,
			what: "kill -9 of " + svc + " at random points, restarted after a random pause",
			run:  func(ctx context.Context, f *fault) (string, error) { return killService(ctx, f, svc) },
		})
	}
	return append(out,
		scenario{name: "kill-random", what: "kill -9 of services picked at random, overlapping (one killed while another is down)", run: killRandom},
		scenario{name: "pg-crash", what: fmt.Sprintf("Postgres crashed (pg_ctl stop -m immediate) while a %d-row batch is relayed and another transaction is open", cfg.batchRows),
			run: func(ctx context.Context, f *fault) (string, error) { return pgCrash(ctx, f, cfg.batchRows) }},
		scenario{name: "nats-kill", what: "the single NATS node (file store) kill -9'd and restarted", run: natsKill},
		scenario{name: "nats-leader-loss", what: "R3 cluster: the CP_CDC leader, then the CP_TICKS leader, kill -9'd", opts: stackOpts{natsNodes: 3}, run: leaderLoss},
		scenario{name: "nats-long-outage", what: "NATS away for longer than the CP_CDC duplicate window", opts: stackOpts{cdcDupWindow: cfg.dupWindow}, run: longOutage},
		scenario{name: "net-cut", what: "toxiproxy: orchestrator↔Postgres down, cinimport↔NATS reset, straux↔Postgres timeout", run: netCut},
		scenario{name: "slow-link", what: "toxiproxy: latency and bandwidth limits on orchestrator↔NATS and cinimport↔Postgres", run: slowLink},
		scenario{name: "oversized-row", what: "a 2 MB rt_session.label committed while later changes keep flowing", run: oversizedRow},
	)
}

func killService(ctx context.Context, f *fault, svc string) (string, error) {
	n := f.times(3)
	for i := range n {
		wait := f.between(time.Second, 6*time.Second)
		if !sleepCtx(ctx, wait) {
			return "", ctx.Err()
		}
		f.s.killService(svc)
		down := f.between(200*time.Millisecond, 3*time.Second)
		f.record("kill #%d after %.1fs, down %.1fs", i+1, wait.Seconds(), down.Seconds())
		if !sleepCtx(ctx, down) {
			return "", ctx.Err()
		}
		if err := f.s.startService(svc); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("kill -9 %s ×%d (%s)", svc, n, strings.Join(f.log, "; ")), nil
}

// killRandom kills services picked at random, each restarted after a random pause that may
// outlast the next kill, so two services are down at once.
func killRandom(ctx context.Context, f *fault) (string, error) {
	n := f.times(5)
	restarts := make(chan error, n)
	for i := range n {
		wait := f.between(500*time.Millisecond, 4*time.Second)
		if !sleepCtx(ctx, wait) {
			return "", ctx.Err()
		}
		svc := services[f.rng.IntN(len(services))]
		if !f.s.svc[svc].running() {
			f.record("#%d %s already down", i+1, svc)
			restarts <- nil
			continue
		}
		f.s.killService(svc)
		down := f.between(200*time.Millisecond, 5*time.Second)
		f.record("#%d %s after %.1fs, down %.1fs", i+1, svc, wait.Seconds(), down.Seconds())
		go func() {
			sleepCtx(ctx, down)
			restarts <- f.s.startService(svc)
		}()
	}
	for range n {
		if err := <-restarts; err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("kill -9 ×%d (%s)", n, strings.Join(f.log, "; ")), nil
}

// pgCrash commits a batch of trades, opens another transaction without committing it, and
// crashes Postgres within 150 ms, while the relay is still publishing the batch.
func pgCrash(ctx context.Context, f *fault, rows int) (string, error) {
	n := f.times(2)
	for i := range n {
		if !sleepCtx(ctx, f.between(2*time.Second, 5*time.Second)) {
			return "", ctx.Err()
		}
		if err := f.w.trades(ctx, rows); err != nil {
			return "", fmt.Errorf("batch before crash: %w", err)
		}
		open, err := f.s.pool.Begin(ctx)
		if err != nil {
			return "", err
		}
		if _, err := open.Exec(ctx, `UPDATE cin_aux.rt_session SET label = 'never committed' WHERE account_scope = $1`, sideScope); err != nil {
			return "", fmt.Errorf("open batch: %w", err)
		}
		delay := f.between(0, 150*time.Millisecond)
		sleepCtx(ctx, delay)
		if err := f.s.crashPostgres(ctx); err != nil {
			return "", err
		}
		_ = open.Rollback(context.WithoutCancel(ctx))
		down := f.between(2*time.Second, 4*time.Second)
		f.record("crash #%d %.0fms after a %d-row commit, down %.1fs", i+1, float64(delay.Milliseconds()), rows, down.Seconds())
		if !sleepCtx(ctx, down) {
			return "", ctx.Err()
		}
		if err := f.s.startPostgres(ctx); err != nil {
			return "", err
		}
		f.s.pool.Reset()
	}
	return fmt.Sprintf("pg_ctl stop -m immediate ×%d (%s)", n, strings.Join(f.log, "; ")), nil
}

func natsKill(ctx context.Context, f *fault) (string, error) {
	n := f.times(2)
	for i := range n {
		wait := f.between(2*time.Second, 6*time.Second)
		if !sleepCtx(ctx, wait) {
			return "", ctx.Err()
		}
		f.s.killNATS(0)
		down := f.between(time.Second, 4*time.Second)
		f.record("kill #%d after %.1fs, down %.1fs", i+1, wait.Seconds(), down.Seconds())
		if !sleepCtx(ctx, down) {
			return "", ctx.Err()
		}
		if err := f.s.startNATS1(0); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("kill -9 nats-server ×%d (%s)", n, strings.Join(f.log, "; ")), nil
}

// leaderLoss kills the node leading CP_CDC, restarts it, then kills the node leading CP_TICKS.
func leaderLoss(ctx context.Context, f *fault) (string, error) {
	streams := []string{"CP_CDC", "CP_TICKS"}
	if f.short {
		streams = streams[:1]
	}
	for _, stream := range streams {
		if !sleepCtx(ctx, f.between(2*time.Second, 5*time.Second)) {
			return "", ctx.Err()
		}
		leader, err := f.s.streamLeader(ctx, stream)
		if err != nil {
			return "", err
		}
		f.s.killNATS(leader)
		down := f.between(4*time.Second, 8*time.Second)
		f.record("%s leader nats%d killed, down %.1fs", stream, leader+1, down.Seconds())
		if !sleepCtx(ctx, down) {
			return "", ctx.Err()
		}
		if err := f.s.startNATS1(leader); err != nil {
			return "", err
		}
	}
	return "kill -9 of the stream leader: " + strings.Join(f.log, "; "), nil
}

// streamLeader finds the index of the node leading stream.
func (s *Stack) streamLeader(ctx context.Context, stream string) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := s.js.Stream(ctx, stream)
		if err == nil {
			if ci := st.CachedInfo().Cluster; ci != nil && ci.Leader != "" {
				for i, p := range s.natsNodes {
					if p.name == ci.Leader {
						return i, nil
					}
				}
				return 0, fmt.Errorf("%s leader %q is not a node of this stack", stream, ci.Leader)
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return 0, fmt.Errorf("no leader for %s after 30s", stream)
}

// longOutage takes NATS away for the duplicate window plus 5 s while the workload commits.
func longOutage(ctx context.Context, f *fault) (string, error) {
	window := f.s.opts.cdcDupWindow
	if !sleepCtx(ctx, f.between(2*time.Second, 4*time.Second)) {
		return "", ctx.Err()
	}
	f.s.killNATS(0)
	down := window + 5*time.Second
	if !sleepCtx(ctx, down) {
		return "", ctx.Err()
	}
	if err := f.s.startNATS1(0); err != nil {
		return "", err
	}
	return fmt.Sprintf("NATS down %.0fs with a CP_CDC duplicate window of %s", down.Seconds(), window), nil
}

// toxic adds a toxic to a service's link and returns its removal.
func (f *fault) toxic(service, to, name, typ, stream string, attrs toxiclient.Attributes) (func() error, error) {
	p, err := f.s.proxy(service, to)
	if err != nil {
		return nil, err
	}
	if _, err := p.AddToxic(name, typ, stream, 1, attrs); err != nil {
		return nil, fmt.Errorf("toxic %s on %s: %w", name, p.Name, err)
	}
	return func() error { return p.RemoveToxic(name) }, nil
}

func netCut(ctx context.Context, f *fault) (string, error) {
	// 1. The orchestrator's Postgres link goes down: the relay's replication connection and pool.
	if !sleepCtx(ctx, f.between(2*time.Second, 4*time.Second)) {
		return "", ctx.Err()
	}
	p, err := f.s.proxy("orchestrator", "pg")
	if err != nil {
		return "", err
	}
	if err := p.Disable(); err != nil {
		return "", fmt.Errorf("disable %s: %w", p.Name, err)
	}
	down := f.between(4*time.Second, 8*time.Second)
	sleepCtx(ctx, down)
	if err := p.Enable(); err != nil {
		return "", fmt.Errorf("enable %s: %w", p.Name, err)
	}
	f.record("orchestrator↔pg down %.1fs", down.Seconds())
	// 2. cinimport's NATS connections are reset as soon as they carry data.
	sleepCtx(ctx, f.between(time.Second, 3*time.Second))
	remove, err := f.toxic("cinimport", "nats", "reset", "reset_peer", "upstream", toxiclient.Attributes{"timeout": 0})
	if err != nil {
		return "", err
	}
	cut := f.between(3*time.Second, 6*time.Second)
	sleepCtx(ctx, cut)
	if err := remove(); err != nil {
		return "", err
	}
	f.record("cinimport↔nats reset_peer %.1fs", cut.Seconds())
	if f.short {
		return "toxiproxy " + strings.Join(f.log, "; "), nil
	}
	// 3. straux's Postgres link swallows data and closes after 3 s.
	sleepCtx(ctx, f.between(time.Second, 3*time.Second))
	remove, err = f.toxic("straux", "pg", "stall", "timeout", "downstream", toxiclient.Attributes{"timeout": 3000})
	if err != nil {
		return "", err
	}
	cut = f.between(4*time.Second, 7*time.Second)
	sleepCtx(ctx, cut)
	if err := remove(); err != nil {
		return "", err
	}
	f.record("straux↔pg timeout toxic %.1fs", cut.Seconds())
	return "toxiproxy " + strings.Join(f.log, "; "), nil
}

func slowLink(ctx context.Context, f *fault) (string, error) {
	if !sleepCtx(ctx, f.between(time.Second, 3*time.Second)) {
		return "", ctx.Err()
	}
	var removes []func() error
	for _, t := range []struct {
		service, to, name, typ, stream string
		attrs                          toxiclient.Attributes
	}{
		{"orchestrator", "nats", "lat-up", "latency", "upstream", toxiclient.Attributes{"latency": 300, "jitter": 100}},
		{"orchestrator", "nats", "lat-down", "latency", "downstream", toxiclient.Attributes{"latency": 300, "jitter": 100}},
		{"orchestrator", "nats", "bw-up", "bandwidth", "upstream", toxiclient.Attributes{"rate": 64}}, // KB/s
		{"cinimport", "pg", "lat-down", "latency", "downstream", toxiclient.Attributes{"latency": 200, "jitter": 50}},
	} {
		rm, err := f.toxic(t.service, t.to, t.name, t.typ, t.stream, t.attrs)
		if err != nil {
			return "", err
		}
		removes = append(removes, rm)
	}
	hold := 20 * time.Second
	if f.short {
		hold = 8 * time.Second
	}
	sleepCtx(ctx, hold)
	for _, rm := range removes {
		if err := rm(); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("toxiproxy %.0fs: orchestrator↔nats latency 300±100ms both ways + 64 KB/s up; cinimport↔pg latency 200±50ms", hold.Seconds()), nil
}

// oversizedRow relabels a side session with 2 MB of text (REPLICA IDENTITY FULL: old and new row
// in one change, over NATS max_payload), then lets the workload go on: its later changes must
// flow and the big change must reach cinimport.
func oversizedRow(ctx context.Context, f *fault) (string, error) {
	if !sleepCtx(ctx, f.between(2*time.Second, 4*time.Second)) {
		return "", ctx.Err()
	}
	var id int64
	err := f.s.pool.QueryRow(ctx, `
		INSERT INTO cin_aux.rt_session (account_scope, label)
		SELECT $1, string_agg(md5(i::text), '') FROM generate_series(1, 65536) AS i
		RETURNING session_id`, sideScope).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("insert 2 MB session: %w", err)
	}
	if _, err := f.s.pool.Exec(ctx, `UPDATE cin_aux.rt_session SET label = label || 'x' WHERE session_id = $1`, id); err != nil {
		return "", fmt.Errorf("update 2 MB session %d: %w", id, err)
	}
	hold := 8 * time.Second
	if f.short {
		hold = 4 * time.Second
	}
	sleepCtx(ctx, hold)
	return fmt.Sprintf("session %d inserted with a 2 MB label, then updated (≈4 MB change with old values); workload ran %.0fs after", id, hold.Seconds()), nil
}
