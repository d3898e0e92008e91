package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
)

// The end-to-end pass drives one mini cycle through the running stack and removes what it made:
//
//   - e2e.tick: a tick period planned after the pass began is sampled and its vectors written
//     (orchestrator ticks → straux). It waits for the next real tick rather than publishing one:
//     a tick is a fact about a period, and a made-up one would sample real symbols for it.
//   - e2e.session: a session opened under an account scope of its own, with two account trades
//     of that scope, gets its two moves (change relay → cinimport).
//   - e2e.universe: a symbol of its own enabled in the universe gets its fetch_klines jobs
//     (change relay → universe watcher → seeder); disabled again, the seeder converges back.
//   - e2e.cleanup: every row the pass created is gone (its session, moves, trades, the symbol and
//     whatever the seeder, the job engine and straux wrote for it).
//
// The session and the symbol carry a random nonce, so the pass touches no real row and two passes
// do not collide; the three parts run at once, so the pass takes about one tick period.

// e2eOptions configure the end-to-end pass.
type e2eOptions struct {
	natsURL string
	// timeout bounds each part; the dev stack's tick period is 40 s.
	timeout time.Duration
}

// e2eRun is one pass's identifiers.
type e2eRun struct {
	pool    *pgxpool.Pool
	js      jetstream.JetStream
	opt     e2eOptions
	scope   string // account scope of the smoke session
	symbol  string // the smoke symbol
	base    string
	session int64
}

func newE2ERun(pool *pgxpool.Pool, opt e2eOptions) (*e2eRun, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("smoke nonce: %w", err)
	}
	nonce := strings.ToUpper(hex.EncodeToString(b))
	return &e2eRun{pool: pool, opt: opt, scope: "cpctl-smoke-" + strings.ToLower(nonce),
		base: "CPSMOKE" + nonce, symbol: "CPSMOKE" + nonce + "USDT"}, nil
}

// runE2E runs the pass; every part reports, and the cleanup runs whatever happened.
func runE2E(ctx context.Context, pool *pgxpool.Pool, opt e2eOptions) []smokeCheck {
	names := []string{"e2e.tick", "e2e.session", "e2e.universe", "e2e.cleanup"}
	r, err := newE2ERun(pool, opt)
	if err != nil {
		return errorChecks(names, err)
	}
	nc, err := dialNATS(opt.natsURL, nats.Name("cpctl smoke"), nats.Timeout(10*time.Second), nats.MaxReconnects(0))
	if err != nil {
		return errorChecks(names, fmt.Errorf("connect NATS %s: %w", config.SafeNATSURL(opt.natsURL), err))
	}
	defer nc.Close()
	if r.js, err = jetstream.New(nc); err != nil {
		return errorChecks(names, err)
	}
	var started time.Time // the database's clock: rows are stamped by it
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&started); err != nil {
		return errorChecks(names, fmt.Errorf("read the database clock: %w", err))
	}
	out := make([]smokeCheck, 3)
	var wg sync.WaitGroup
	for i, part := range []func(context.Context, time.Time) smokeCheck{r.tick, r.sessionMoves, r.universeSeeds} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, opt.timeout)
			defer cancel()
			out[i] = part(pctx, started)
		}()
	}
	wg.Wait()
	return append(out, r.cleanup(context.WithoutCancel(ctx)))
}

func errorChecks(names []string, err error) []smokeCheck {
	out := make([]smokeCheck, len(names))
	for i, n := range names {
		out[i] = errorCheck(n, err)
	}
	return out
}

// poll runs cond every 200 ms until it holds (true), fails (error) or ctx ends (false).
func poll(ctx context.Context, cond func(context.Context) (bool, error)) (bool, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if ok || (err != nil && ctx.Err() == nil) {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-t.C:
		}
	}
}

// tick waits for a tick period planned after the pass began to be done with its vectors written.
func (r *e2eRun) tick(ctx context.Context, started time.Time) smokeCheck {
	const name = "e2e.tick"
	var (
		period           time.Time
		length           time.Duration
		sampled, vectors int
		emptyDone        int // periods done without one good sample (the exchange refusing)
	)
	ok, err := poll(ctx, func(ctx context.Context) (bool, error) {
		err := r.pool.QueryRow(ctx, mustSQL("smoke_e2e_tick"), started).Scan(&period, &length, &sampled, &vectors, &emptyDone)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil && sampled > 0 && vectors > 0, err
	})
	switch {
	case err != nil:
		return errorCheck(name, err)
	case !ok && emptyDone > 0:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf(
			"%d tick periods since %s were done without one good sample: straux runs but cannot sample; check the exchange (cpctl doctor: exchange.reachable, a 418 ban or 429s) and straux's log",
			emptyDone, started.UTC().Format(time.RFC3339))}
	case !ok:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf(
			"no tick period planned since %s was sampled with its vectors within %s: check the orchestrator runs (RUN_JOBS=1, not frozen) and straux runs (cpctl doctor, nats micro ls)",
			started.UTC().Format(time.RFC3339), r.opt.timeout)}
	}
	return smokeCheck{Name: name, Status: statusOK, Detail: fmt.Sprintf("period %s (%s): %d symbols sampled, %d vector rows written",
		period.UTC().Format(time.RFC3339), length, sampled, vectors)}
}

// sessionMoves opens a session under the pass's own scope with two trades of that scope and waits
// for their moves.
func (r *e2eRun) sessionMoves(ctx context.Context, started time.Time) smokeCheck {
	const name = "e2e.session"
	var symbol, quote string
	err := r.pool.QueryRow(ctx, mustSQL("smoke_e2e_market")).Scan(&symbol, &quote)
	if errors.Is(err, pgx.ErrNoRows) {
		return smokeCheck{Name: name, Status: statusSkip, Detail: "no enabled symbol in the universe to trade"}
	}
	if err != nil {
		return errorCheck(name, fmt.Errorf("pick a market: %w", err))
	}
	// Trades first, then the session: its opening imports them at once, and the trades' own
	// insert events import again, finding nothing new.
	if _, err := r.pool.Exec(ctx, mustSQL("smoke_e2e_trades"), symbol, r.scope, started); err != nil {
		return errorCheck(name, fmt.Errorf("insert smoke trades (scope %s): %w", r.scope, err))
	}
	if err := r.pool.QueryRow(ctx, mustSQL("smoke_e2e_session"), r.scope, started.Add(-time.Minute)).Scan(&r.session); err != nil {
		return errorCheck(name, fmt.Errorf("open smoke session (scope %s): %w", r.scope, err))
	}
	var moves int
	ok, err := poll(ctx, func(ctx context.Context) (bool, error) {
		err := r.pool.QueryRow(ctx, "SELECT count(*) FROM cin_aux.rt_move WHERE session_id = $1", r.session).Scan(&moves)
		return err == nil && moves >= 2, err
	})
	switch {
	case err != nil:
		return errorCheck(name, err)
	case !ok:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf(
			"session %d (scope %s) has %d of its 2 moves after %s: check the orchestrator's change relay (cpctl doctor: replication slot) and cinimport run",
			r.session, r.scope, moves, r.opt.timeout)}
	}
	return smokeCheck{Name: name, Status: statusOK, Detail: fmt.Sprintf("session %d (scope %s) got its 2 moves from %s trades", r.session, r.scope, symbol)}
}

// universeSeeds enables the pass's own symbol and waits for its fetch_klines jobs, one per
// enabled window; then disables it and waits for the seeder to have handled that too.
func (r *e2eRun) universeSeeds(ctx context.Context, _ time.Time) smokeCheck {
	const name = "e2e.universe"
	var windows int
	if err := r.pool.QueryRow(ctx, "SELECT count(*) FROM settings.windows WHERE enabled").Scan(&windows); err != nil {
		return errorCheck(name, err)
	}
	if _, err := r.pool.Exec(ctx, mustSQL("smoke_e2e_symbol"), r.symbol, r.base); err != nil {
		return errorCheck(name, fmt.Errorf("enable smoke symbol %s: %w", r.symbol, err))
	}
	var jobs int
	ok, err := poll(ctx, func(ctx context.Context) (bool, error) {
		// One per window: a failing recurring job may have added its next occurrence already.
		err := r.pool.QueryRow(ctx, `SELECT count(DISTINCT payload->>'window') FROM ingest.jobs
			WHERE kind = 'fetch_klines' AND payload->>'symbol' = $1`, r.symbol).Scan(&jobs)
		return err == nil && jobs >= windows, err
	})
	switch {
	case err != nil:
		return errorCheck(name, err)
	case !ok:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf(
			"symbol %s enabled, %d of its %d fetch_klines jobs seeded after %s: check the orchestrator's change relay and universe watcher and the seeder run",
			r.symbol, jobs, windows, r.opt.timeout)}
	}
	// Disable it and let the seeder converge (cancel its jobs) before the cleanup removes them:
	// wait for the universe event that follows and the seeder's acknowledgement of it.
	after, err := r.universeSeq(ctx)
	if err != nil {
		return errorCheck(name, err)
	}
	if _, err := r.pool.Exec(ctx, "UPDATE settings.coin_universe SET enabled = false WHERE symbol = $1", r.symbol); err != nil {
		return errorCheck(name, fmt.Errorf("disable smoke symbol %s: %w", r.symbol, err))
	}
	ok, err = poll(ctx, func(ctx context.Context) (bool, error) {
		seq, err := r.universeSeq(ctx)
		if err != nil || seq <= after {
			return false, err
		}
		c, err := r.js.Consumer(ctx, events.StreamUniverse, events.ConsumerSeederUniverse)
		if err != nil {
			return false, fmt.Errorf("seeder durable: %w", err)
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= seq, err
	})
	switch {
	case err != nil:
		return errorCheck(name, err)
	case !ok:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf(
			"symbol %s got its %d jobs, but its removal was not handled by the seeder within %s", r.symbol, jobs, r.opt.timeout)}
	}
	return smokeCheck{Name: name, Status: statusOK, Detail: fmt.Sprintf("symbol %s enabled: its %d fetch_klines jobs were seeded; disabled: the seeder converged", r.symbol, jobs)}
}

// universeSeq is CP_UNIVERSE's last sequence.
func (r *e2eRun) universeSeq(ctx context.Context) (uint64, error) {
	s, err := r.js.Stream(ctx, events.StreamUniverse)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", events.StreamUniverse, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", events.StreamUniverse, err)
	}
	return info.State.LastSeq, nil
}

// cleanup removes what the pass created and checks that nothing is left.
func (r *e2eRun) cleanup(ctx context.Context) smokeCheck {
	const name = "e2e.cleanup"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var removed, withSession int64
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, mustSQL("smoke_e2e_cleanup"), r.session, r.scope, r.symbol).Scan(&removed); err != nil {
			return err
		}
		return tx.QueryRow(ctx, mustSQL("smoke_e2e_cleanup_session"), r.session).Scan(&withSession)
	})
	if err != nil {
		return errorCheck(name, fmt.Errorf("remove smoke rows (session %d, scope %s, symbol %s): %w", r.session, r.scope, r.symbol, err))
	}
	var left []string
	var tbl string
	var n int64
	rows, err := r.pool.Query(ctx, mustSQL("smoke_e2e_leftovers"), r.session, r.scope, r.symbol)
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&tbl, &n}, func() error { left = append(left, fmt.Sprintf("%s: %d", tbl, n)); return nil })
	}
	switch {
	case err != nil:
		return errorCheck(name, fmt.Errorf("count smoke leftovers: %w", err))
	case len(left) > 0:
		return smokeCheck{Name: name, Status: statusFail, Detail: fmt.Sprintf("rows of session %d / scope %s / symbol %s left: %s",
			r.session, r.scope, r.symbol, strings.Join(left, ", "))}
	}
	return smokeCheck{Name: name, Status: statusOK, Detail: fmt.Sprintf("removed the %d rows the pass created; none left", removed+withSession)}
}
