package ticks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/services/straux/internal/book"
)

// Streams is the market data of stream mode: local order books and 24-hour tickers kept from the
// exchange's streams for the symbols this replica holds (package feed keeps them). A replica
// claims the symbols it holds live first; a symbol whose book is not live is sampled over REST
// (flag rest_fallback), within what the tick's weight budget allows.
type Streams interface {
	// Sums is a symbol's local book read as sums over up to depth levels a side (top for the
	// top sums), its state (exchange.BookLive, …) and its age; ok is false unless it is live
	// (state is "" when this replica holds no book of it).
	Sums(symbol string, depth, top int) (b exchange.BookSums, state string, age time.Duration, ok bool)
	// Ticker is the symbol's newest 24-hour ticker from its stream; ok is false when there is
	// none live.
	Ticker(symbol string) (t exchange.Ticker24h, age time.Duration, ok bool)
	// Live lists the symbols whose books this replica holds live now.
	Live() []string
	// Held lists the symbols whose streams this replica holds, live or not (its share of the
	// universe, and the symbols lingering after they moved to another replica).
	Held() []string
	// Shared reports whether other live replicas hold books too (a replica then leaves the
	// symbols it does not hold to them for the handover grace).
	Shared() bool
}

// Reasons a symbol was sampled over REST in stream mode (cp_straux_rest_fallbacks_total).
const (
	fallbackNotHeld = "not_held" // still open half a period in: its holder is gone or stuck
	fallbackBudget  = "budget_spent"
)

// fallbacks is what one replica sampled over REST in one period, for its log line.
type fallbacks struct {
	mu       sync.Mutex
	byReason map[string]int
	symbols  []string // the first few
}

const fallbackSymbolsLogged = 20

func (f *fallbacks) add(symbol, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byReason == nil {
		f.byReason = map[string]int{}
	}
	f.byReason[reason]++
	if len(f.symbols) < fallbackSymbolsLogged {
		f.symbols = append(f.symbols, symbol)
	}
}

func (f *fallbacks) total() (n int, byReason map[string]int, first []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.byReason {
		n += c
	}
	return n, f.byReason, slices.Clone(f.symbols)
}

// sampleSymbol samples one symbol: from its local book in stream mode, else (or when the book is
// not live) by REST depth calls. invalid reports an exchange that does not know the symbol.
func (r *Runner) sampleSymbol(ctx context.Context, run *periodRun, p time.Time, symbol string) (s book.Sample, invalid bool) {
	if r.cfg.Streams == nil {
		return r.sampleREST(ctx, p, symbol)
	}
	s, why := r.sampleStream(ctx, p, symbol)
	if why == nil {
		return s, false
	}
	return r.fallback(ctx, run, p, symbol, why)
}

// sampleStream samples a symbol from its local book; why says why it could not (the book not
// live, or not held here).
func (r *Runner) sampleStream(ctx context.Context, p time.Time, symbol string) (s book.Sample, why error) {
	var ages []time.Duration
	s, _, why = r.takeSnapshots(ctx, p, symbol, func() (book.Snapshot, bool, error) {
		b, state, age, ok := r.cfg.Streams.Sums(symbol, r.cfg.DepthLimit, book.TopLevels)
		switch {
		case !ok && state == "":
			return book.Snapshot{}, false, errNotLive(fallbackNotHeld)
		case !ok || state != exchange.BookLive:
			return book.Snapshot{}, false, errNotLive(state)
		}
		ages = append(ages, age)
		sn, ok := book.MeasureSums(b)
		return sn, ok, nil
	})
	if why != nil {
		return s, why
	}
	s.Source = book.SourceStream
	s.BookAge = slices.Max(ages)
	r.m.bookAge.Observe(s.BookAge.Seconds())
	if s.Valid {
		r.m.samplesBySource.WithLabelValues(book.SourceStream).Inc()
	}
	return s, nil
}

// presampled is a symbol's sample from its local book as of when this replica first needed one
// in the period: every live book it holds is read in one pass then, so the universe is sampled
// at one instant (not over the seconds the chunks take) and the books' ages are those of that
// instant. A symbol without a presample (not live then) is sampled now.
func (run *periodRun) presampled(r *Runner, ctx context.Context, symbol string) (book.Sample, error) {
	run.preOnce.Do(func() {
		live := r.cfg.Streams.Live()
		run.pre = make(map[string]book.Sample, len(live))
		for _, sym := range live {
			if s, why := r.sampleStream(ctx, run.tick.PeriodStart, sym); why == nil {
				run.pre[sym] = s
			}
		}
	})
	if s, ok := run.pre[symbol]; ok {
		return s, nil
	}
	return r.sampleStream(ctx, run.tick.PeriodStart, symbol)
}

// fallback samples over REST a symbol whose local book could not be sampled (why), within the
// tick's REST fallback budget.
func (r *Runner) fallback(ctx context.Context, run *periodRun, p time.Time, symbol string, why error) (s book.Sample, invalid bool) {
	reason := why.Error()
	if run.fallbackLeft.Add(-1) < 0 {
		r.m.fallbacks.WithLabelValues(fallbackBudget).Inc()
		run.fallbacks.add(symbol, fallbackBudget)
		return book.Failed(symbol, p, fmt.Sprintf("stream %s: REST fallback budget of this tick spent", reason)), false
	}
	r.m.fallbacks.WithLabelValues(reason).Inc()
	run.fallbacks.add(symbol, reason)
	s, invalid = r.sampleREST(ctx, p, symbol)
	if s.Valid {
		s.Flags = append(s.Flags, book.FlagRestFallback)
	} else {
		// Named as a stream miss (cpctl status counts `stream …` reasons as missed).
		r.m.fallbackFailures.Inc()
		s.Reason = fmt.Sprintf("stream %s; REST fallback failed: %s", reason, s.Reason)
	}
	return s, invalid
}

// errNotLive says why a local book could not be sampled: its state, or not_held.
type errNotLive string

func (e errNotLive) Error() string { return string(e) }

// sampleREST takes the configured snapshots of one symbol's book by REST depth calls.
func (r *Runner) sampleREST(ctx context.Context, p time.Time, symbol string) (s book.Sample, invalid bool) {
	s, lastErr, _ := r.takeSnapshots(ctx, p, symbol, func() (book.Snapshot, bool, error) {
		ob, err := r.depth(ctx, symbol)
		if err != nil {
			return book.Snapshot{}, false, err
		}
		sn, ok := book.Measure(ob)
		return sn, ok, nil
	})
	if !s.Valid && s.Reason == "" {
		return book.Failed(symbol, p, failureReason(lastErr)), isInvalid(lastErr)
	}
	s.Source = book.SourceRest
	if s.Valid {
		r.m.samplesBySource.WithLabelValues(book.SourceRest).Inc()
	}
	return s, false
}

// takeSnapshots takes the configured snapshots of a symbol's book from get (hasMid false: an
// empty book), SnapshotSpacing apart, and aggregates them. A stream book that is not live fails the whole sample at once (notLive),
// so it falls back to REST; other errors are retried at the next snapshot and the last one is
// returned when no snapshot succeeded (s then has neither Valid nor a Reason).
func (r *Runner) takeSnapshots(ctx context.Context, p time.Time, symbol string, get func() (sn book.Snapshot, hasMid bool, err error)) (s book.Sample, lastErr, notLive error) {
	var (
		snaps []book.Snapshot
		empty int
	)
	for i := range r.cfg.Snapshots {
		if i > 0 {
			select {
			case <-time.After(r.cfg.SnapshotSpacing):
			case <-ctx.Done():
			}
		}
		sn, hasMid, err := get()
		if nl, ok := err.(errNotLive); ok {
			if len(snaps) == 0 && empty == 0 {
				return s, nil, nl
			}
			continue // the stream went down mid-sample: keep what it gave
		}
		if err != nil {
			lastErr = err
			continue
		}
		if hasMid {
			snaps = append(snaps, sn)
		} else {
			empty++
		}
	}
	if len(snaps) == 0 && empty == 0 {
		return s, lastErr, nil
	}
	s = book.Aggregate(symbol, p, snaps, empty, r.cfg.Snapshots)
	s.SampledAt = r.cfg.Now()
	return s, nil, nil
}

// streamTickers takes the symbols' tickers from their streams and returns the symbols that have
// none live (fetched over REST).
func (r *Runner) streamTickers(symbols []string) (ts []exchange.Ticker24h, missing []string) {
	ts = make([]exchange.Ticker24h, 0, len(symbols))
	for _, sym := range symbols {
		if t, _, ok := r.cfg.Streams.Ticker(sym); ok {
			ts = append(ts, t)
		} else {
			missing = append(missing, sym)
		}
	}
	return ts, missing
}
