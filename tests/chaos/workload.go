package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// workload commits known facts to Postgres at a moderate, bounded rate while faults happen:
// account trades for the OPEN session's scope (single trades and batches), side sessions inserted,
// relabelled and closed, the main session relabelled, and universe changes (XRPUSDT toggled,
// ETHBTC added and removed). It never needs to remember what it committed: the audit reads that
// from Postgres itself. A statement that fails during a fault is counted and the loop goes on.
type workload struct {
	pool  *pgxpool.Pool
	log   *slog.Logger
	rngMu sync.Mutex // trades are also committed from scenario functions
	rng   *rand.Rand

	nextTrade  atomic.Int64
	committed  atomic.Int64 // transactions committed
	failed     atomic.Int64 // transactions that failed (fault in progress)
	sideOpen   []int64
	universeOp int

	stop context.CancelFunc
	done sync.WaitGroup
}

func newWorkload(pool *pgxpool.Pool, log *slog.Logger, seed uint64) *workload {
	w := &workload{pool: pool, log: log, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	w.nextTrade.Store(1)
	return w
}

// start runs the workload until stopWait.
func (w *workload) start(ctx context.Context) {
	ctx, w.stop = context.WithCancel(ctx)
	w.done.Go(func() { w.loop(ctx) })
}

func (w *workload) stopWait() {
	w.stop()
	w.done.Wait()
}

func (w *workload) loop(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Every 100 ms one or two trades; every 4 s a batch of 200; sessions every 700 ms, the
		// main session every 2 s, the universe every 3 s.
		w.do(ctx, "trades", func(ctx context.Context) error { return w.trades(ctx, 1+w.intN(2)) })
		if n%40 == 39 {
			w.do(ctx, "trade batch", func(ctx context.Context) error { return w.trades(ctx, 200) })
		}
		if n%7 == 3 {
			w.do(ctx, "side session", w.sideSession)
		}
		if n%20 == 10 {
			w.do(ctx, "main session", w.mainSession)
		}
		if n%30 == 15 {
			w.do(ctx, "universe", w.universe)
		}
	}
}

func (w *workload) intN(n int) int {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return w.rng.IntN(n)
}

func (w *workload) do(ctx context.Context, what string, f func(context.Context) error) {
	opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := f(opCtx); err != nil {
		if ctx.Err() == nil {
			w.failed.Add(1)
			w.log.Debug("workload transaction failed (fault in progress?)", "op", what, "err", err)
		}
		return
	}
	w.committed.Add(1)
}

var tradeSymbols = []string{"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"}

// trades inserts n trades of the chaos scope in one transaction, with ids never used before.
func (w *workload) trades(ctx context.Context, n int) error {
	first := w.nextTrade.Add(int64(n)) - int64(n)
	sym := tradeSymbols[w.intN(len(tradeSymbols))]
	buyer := w.intN(2) == 0
	_, err := w.pool.Exec(ctx, `
		INSERT INTO market.account_trades (symbol, trade_id, order_id, price, qty, quote_qty, commission,
		                                   commission_asset, trade_time, is_buyer, is_maker, account_scope)
		SELECT $1, id, id, 100 + id % 7, 0.01, (100 + id % 7) * 0.01, 0.0001, 'USDT', now(), $4, false, $5
		  FROM generate_series($2::bigint, $3::bigint) AS id`,
		sym, first, first+int64(n)-1, buyer, tradeScope)
	if err != nil {
		return fmt.Errorf("insert trades %d..%d: %w", first, first+int64(n)-1, err)
	}
	return nil
}

// sideSession inserts, relabels or closes a session of the side scope (no trades there).
func (w *workload) sideSession(ctx context.Context) error {
	switch op := w.intN(4); {
	case op == 0 || len(w.sideOpen) == 0:
		var id int64
		if err := w.pool.QueryRow(ctx, `INSERT INTO cin_aux.rt_session (account_scope, label) VALUES ($1, 'side') RETURNING session_id`,
			sideScope).Scan(&id); err != nil {
			return fmt.Errorf("insert side session: %w", err)
		}
		w.sideOpen = append(w.sideOpen, id)
	case op == 1 && len(w.sideOpen) > 3:
		i := w.intN(len(w.sideOpen))
		id := w.sideOpen[i]
		if _, err := w.pool.Exec(ctx, `UPDATE cin_aux.rt_session SET status = 'CLOSED', closed_at = now() WHERE session_id = $1`, id); err != nil {
			return fmt.Errorf("close side session %d: %w", id, err)
		}
		w.sideOpen = append(w.sideOpen[:i], w.sideOpen[i+1:]...)
	default:
		id := w.sideOpen[w.intN(len(w.sideOpen))]
		if _, err := w.pool.Exec(ctx, `UPDATE cin_aux.rt_session SET label = 'side ' || md5(random()::text) WHERE session_id = $1`, id); err != nil {
			return fmt.Errorf("relabel side session %d: %w", id, err)
		}
	}
	return nil
}

// mainSession relabels the OPEN session that owns the trades (a session change: cinimport
// imports it again).
func (w *workload) mainSession(ctx context.Context) error {
	if _, err := w.pool.Exec(ctx, `UPDATE cin_aux.rt_session SET label = 'chaos main ' || md5(random()::text) WHERE account_scope = $1`, tradeScope); err != nil {
		return fmt.Errorf("relabel main session: %w", err)
	}
	return nil
}

// universe toggles XRPUSDT, and every fourth time adds or removes ETHBTC instead.
func (w *workload) universe(ctx context.Context) error {
	w.universeOp++
	var err error
	if w.universeOp%4 == 0 {
		_, err = w.pool.Exec(ctx, `
			WITH del AS (DELETE FROM settings.coin_universe WHERE symbol = 'ETHBTC' RETURNING 1)
			INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset)
			SELECT 'ETHBTC', 'ETH', 'BTC' WHERE NOT EXISTS (SELECT 1 FROM del)`)
	} else {
		_, err = w.pool.Exec(ctx, `
			INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset, enabled) VALUES ('XRPUSDT', 'XRP', 'USDT', true)
			    ON CONFLICT (symbol) DO UPDATE SET enabled = NOT coalesce(settings.coin_universe.enabled, true)`)
	}
	if err != nil {
		return fmt.Errorf("change universe: %w", err)
	}
	return nil
}

// marker commits one last trade and session change after a fault: the audit then also proves
// that changes made after the fault flow.
func (w *workload) marker(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := w.trades(opCtx, 1)
		if err == nil {
			err = w.mainSession(opCtx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("post-fault marker: %w", err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}
