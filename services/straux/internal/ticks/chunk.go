package ticks

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
	"cryptopill.dev/jobs/services/straux/internal/cputime"
	"cryptopill.dev/jobs/services/straux/internal/store"
	"cryptopill.dev/jobs/services/straux/internal/window"
)

// fetched is what the exchange said about a chunk.
type fetched struct {
	samples []book.Sample
	tickers []exchange.Ticker24h
}

// processChunk samples the claimed symbols, computes their windows and writes everything, with
// the claims' completion, in one transaction. An error means nothing was written.
func (r *Runner) processChunk(ctx context.Context, run *periodRun, claims []store.Claim, windows []window.Window) (err error) {
	ctx, span := r.tracer.Start(ctx, "straux.chunk", trace.WithAttributes(attribute.Int("cp.symbols", len(claims))))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "chunk not written")
		}
		span.End()
	}()
	p, interval := run.tick.PeriodStart, run.tick.Period
	var live, abandoned []string
	for _, c := range claims {
		if c.Attempt > r.cfg.MaxAttempts {
			abandoned = append(abandoned, c.Symbol)
		} else {
			live = append(live, c.Symbol)
		}
	}
	stopRenew := r.renewLeases(ctx, p, symbolsOf(claims))
	defer stopRenew()

	labels := make([]string, len(windows))
	var longest time.Duration
	for i, w := range windows {
		labels[i] = w.Label
		longest = max(longest, w.Duration)
	}

	// The database read and the exchange calls go out together.
	var (
		cc      *store.ChunkContext
		readErr error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cc, readErr = r.st.ReadChunkContext(ctx, symbolsOf(claims), labels, p, longest, false)
	}()
	// Symbols the exchange says are not trading are marked, not sampled (no depth call, no
	// ticker); a book that comes back empty makes it ask again.
	live, notTrading := r.status.split(ctx, live)
	f := r.fetch(ctx, run, p, live)
	r.status.settle(ctx, p, &f, notTrading)
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	for _, sym := range abandoned {
		f.samples = append(f.samples, book.Failed(sym, p,
			fmt.Sprintf("abandoned after %d attempts in this period", r.cfg.MaxAttempts)))
	}

	if r.cfg.Backfill && longest > 0 {
		r.backfill(ctx, run, cc, f.samples, windows, longest)
	}

	outcomes := make(map[string]string, len(f.samples))
	sws := make([]store.SymbolWindows, 0, len(f.samples))
	runtime.LockOSThread()
	t0 := cputime.Thread()
	ws := window.Get()
	for i := range f.samples {
		s := &f.samples[i]
		switch {
		case s.Valid:
			outcomes[s.Symbol] = store.OutcomeSampled
		case slices.Contains(abandoned, s.Symbol):
			outcomes[s.Symbol] = store.OutcomeAbandoned
		default:
			outcomes[s.Symbol] = store.OutcomeFailed
		}
		s.MarkSpacing(cc.LastGood[s.Symbol], interval)
		pts := cc.History[s.Symbol]
		if s.Valid {
			mid, _ := s.Mid.Float64()
			vol, _ := s.BidVol.Add(s.AskVol).Float64()
			pts = append(pts, window.Point{T: p, Mid: mid, Vol: vol})
		}
		res := ws.Compute(nil, pts, p, interval, windows, r.cfg.MaxBins, cc.PrevFor(s.Symbol))
		for _, w := range res {
			if w.Reason == "" {
				r.m.windows.WithLabelValues("computed").Inc()
			} else {
				r.m.windows.WithLabelValues("too_few_samples").Inc()
			}
		}
		sws = append(sws, store.SymbolWindows{Symbol: s.Symbol, Results: res})
	}
	window.Put(ws)
	cpu := cputime.Thread() - t0
	runtime.UnlockOSThread()
	r.vectorsCPU.Add(int64(cpu))
	r.m.vectorsCPU.Add(cpu.Seconds())

	written, err := r.st.WriteChunk(ctx, store.ChunkWrite{
		Period: p, Replica: r.cfg.Replica, Outcomes: outcomes,
		Samples: f.samples, Tickers: f.tickers, Windows: sws,
	})
	if err != nil {
		return err
	}
	for sym, o := range outcomes {
		if written[sym] {
			r.m.symbols.WithLabelValues(o).Inc()
		} else {
			r.m.claimsLost.Inc()
			r.log.WarnContext(ctx, "claim taken over before it was written; left to its new holder", "symbol", sym, "period_start", p)
		}
	}
	return nil
}

// renewLeases extends the chunk's leases every third of a lease until stopped.
func (r *Runner) renewLeases(ctx context.Context, p time.Time, symbols []string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.st.Renew(ctx, p, symbols, r.cfg.Replica, r.cfg.Lease); err != nil {
					r.log.WarnContext(ctx, "renew leases", "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// fetch samples symbols: one ticker batch for the chunk and the configured order-book snapshots
// per symbol, concurrently within the process's fetch slots. A symbol that fails gets a sample
// with the reason; a failed ticker batch only loses the tickers. One unknown symbol fails a
// whole ticker batch (-1121), so the batch is sent once more without the symbols whose order
// book was refused as invalid.
//
// In stream mode the books and tickers come from the streams; only the symbols without a live
// book or ticker go to REST.
func (r *Runner) fetch(ctx context.Context, run *periodRun, p time.Time, symbols []string) fetched {
	var f fetched
	if len(symbols) == 0 {
		return f
	}
	f.samples = make([]book.Sample, len(symbols))
	invalid := make([]bool, len(symbols))
	var books sync.WaitGroup
	for i, sym := range symbols {
		// A live local book with one snapshot a tick is read in place (no I/O, no wait); only
		// REST calls and spaced snapshots get a goroutine each.
		if r.cfg.Streams != nil && r.cfg.Snapshots == 1 {
			s, why := run.presampled(r, ctx, sym)
			if why == nil {
				f.samples[i] = s
				continue
			}
			books.Add(1)
			go func() {
				defer books.Done()
				f.samples[i], invalid[i] = r.fallback(ctx, run, p, sym, why)
			}()
			continue
		}
		books.Add(1)
		go func() {
			defer books.Done()
			f.samples[i], invalid[i] = r.sampleSymbol(ctx, run, p, sym)
		}()
	}
	tickers := func(syms []string) ([]exchange.Ticker24h, error) {
		select {
		case r.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-r.slots }()
		tctx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassTicks), r.cfg.SymbolTimeout)
		defer cancel()
		return r.ex.Tickers24h(tctx, syms)
	}
	var (
		ts       []exchange.Ticker24h
		err      error
		restSyms = symbols
	)
	if r.cfg.Streams != nil {
		ts, restSyms = r.streamTickers(symbols)
	}
	if len(restSyms) > 0 {
		var rest []exchange.Ticker24h
		rest, err = tickers(restSyms)
		ts = append(ts, rest...)
	}
	books.Wait()
	if errors.Is(err, exchange.ErrInvalidSymbol) {
		var valid []string
		for i, sym := range symbols {
			// In stream mode a symbol's depth call may not have run (its fallback budget
			// spent): only symbols with a book this tick are known to the exchange.
			if !invalid[i] && slices.Contains(restSyms, sym) && (r.cfg.Streams == nil || f.samples[i].Valid) {
				valid = append(valid, sym)
			}
		}
		if len(valid) > 0 && len(valid) < len(restSyms) {
			var rest []exchange.Ticker24h
			if rest, err = tickers(valid); err == nil {
				ts = append(ts, rest...)
			}
		}
	}
	if err != nil {
		r.m.tickerErrors.Inc()
		r.log.WarnContext(ctx, "ticker batch failed; samples are written without tickers", "symbols", len(restSyms), "err", err)
	}
	f.tickers = ts
	return f
}

func isInvalid(err error) bool { return errors.Is(err, exchange.ErrInvalidSymbol) }

func (r *Runner) depth(ctx context.Context, symbol string) (*exchange.OrderBook, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.slots }()
	// The ticks' calls draw on their reserve in the limiter.
	dctx, cancel := context.WithTimeout(exchange.WithClass(ctx, exchange.ClassTicks), r.cfg.SymbolTimeout)
	defer cancel()
	return r.ex.Depth(dctx, symbol, r.cfg.DepthLimit)
}

// failureReason is the short reason stored for a symbol that could not be sampled.
func failureReason(err error) string {
	if err == nil {
		return "no order book"
	}
	var kind string
	switch {
	case errors.Is(err, exchange.ErrFirewall):
		// Before timeout: a call that would wait out the firewall's pause fails at its deadline.
		kind = "firewall"
	case errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case errors.Is(err, exchange.ErrInvalidSymbol):
		kind = "invalid symbol"
	case errors.Is(err, exchange.ErrMalformedResponse):
		kind = "bad body"
	case errors.Is(err, exchange.ErrRateLimited), errors.Is(err, exchange.ErrBanned):
		kind = "rate limited"
	case errors.Is(err, exchange.ErrServer):
		kind = "exchange error"
	default:
		kind = "error"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return kind + ": " + msg
}
