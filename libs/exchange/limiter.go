package exchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Binance's published default, used until exchangeInfo has been read.
const (
	defaultWeightLimit  = 6000
	defaultWeightWindow = time.Minute
	// A 418 without Retry-After blocks for Binance's shortest ban.
	defaultBanPause = 2 * time.Minute
	// A 403 from the exchange's firewall (which sends no Retry-After) blocks this long: Binance
	// asks clients to stop and wait, and a firewall block outlasts a weight window.
	defaultFirewallPause = 5 * time.Minute
	// maxRetryAfter is Binance's longest ban: a longer Retry-After is taken as this.
	maxRetryAfter = 72 * time.Hour
	// maxWeightWindow bounds a rateLimits window (Binance's longest interval is a day).
	maxWeightWindow = 7 * 24 * time.Hour
)

// Limiter keeps one host's REQUEST_WEIGHT budget for every Client in the process. Get it from
// Client.Limiter; its Stats feed metrics.
//
// The budget is the exchange's limit less a 10% safety margin, per window (one minute on
// Binance) of the exchange's clock. The local estimate of that clock is off by up to a guard (the
// larger of window/60, at most a second, and half the round trip of the last clock sync), and a
// call is counted by the exchange when it arrives, which may be a window later than when it was
// sent; so a call counts in every window it could have landed in: those overlapping
// [sent − guard, answered + guard].
type Limiter struct {
	host string
	now  func() time.Time // the local clock

	// initLock (a one-slot semaphore, so waiting for it can be cancelled) serialises the lazy
	// read of exchangeInfo by the clients sharing this limiter.
	initLock chan struct{}

	mu         sync.Mutex
	configured bool
	limit      int
	window     time.Duration
	guard      time.Duration // clock uncertainty: max(baseGuard, offsetErr), at most window/4
	baseGuard  time.Duration
	offsetErr  time.Duration // how far offset may be off, from the sync's round trip
	header     string        // canonical name of the used-weight header for window
	offset     time.Duration // exchange clock − local clock
	used       map[int64]int // window index → weight counted in it
	// jobsUsed is the part of used counted by calls not of ClassTicks; tickReservePct of the
	// budget is kept from them (SetTickReserve).
	jobsUsed       map[int64]int
	tickReservePct int
	inflight       map[*reservation]struct{}
	blocked        time.Time // local clock: no call before this (429/418 Retry-After)
	blockedBy      error     // ErrRateLimited, ErrBanned or ErrFirewall
	// The latest answer's headers and when its call was sent and answered: a lower bound for
	// the exchange's count when the window changes.
	lastHeader         http.Header
	lastSent, lastRecv time.Time

	// Counters for Stats.
	waits      uint64
	waitTime   time.Duration
	limited429 uint64
	banned418  uint64
	firewalled uint64
	server5xx  uint64
}

// LimiterStats is a snapshot of a Limiter, for metrics.
type LimiterStats struct {
	// Host is the exchange's host[:port].
	Host string
	// Limit is the REQUEST_WEIGHT per Window the exchange reports (6000 per minute until it has
	// been read); Budget is Limit less the safety margin, what the limiter lets through.
	Limit  int
	Budget int
	Window time.Duration
	// Used is the weight counted in the current window: reserved locally, raised to the
	// exchange's X-MBX-USED-WEIGHT-* count when that is higher. InFlight is the weight of calls
	// sent and not yet answered.
	Used     int
	InFlight int
	// JobsUsed is the part of Used counted by calls other than ClassTicks, JobsBudget what they
	// may spend per window (Budget less the ticks' reserve, SetTickReserve).
	JobsUsed   int
	JobsBudget int
	// Waits counts calls that waited for a window to roll or a Retry-After to pass, WaitTime
	// their total wait.
	Waits    uint64
	WaitTime time.Duration
	// RateLimited, Banned and Firewalled count 429, 418 and 403 answers; ServerErrors 5xx
	// answers (each attempt, retried or not).
	RateLimited  uint64
	Banned       uint64
	Firewalled   uint64
	ServerErrors uint64
	// BlockedUntil is when the latest 429/418 Retry-After or 403 pause ends (zero if none is in
	// force).
	BlockedUntil time.Time
}

// limiters holds the process-wide limiter of each host. It is the package's one piece of global
// state, on purpose: the exchange counts weight per IP, so every client in the process must draw
// from the same budget however it was constructed.
var limiters sync.Map // host → *Limiter

func limiterFor(host string, now func() time.Time) *Limiter {
	if l, ok := limiters.Load(host); ok {
		return l.(*Limiter)
	}
	l, _ := limiters.LoadOrStore(host, newLimiter(host, now))
	return l.(*Limiter)
}

func newLimiter(host string, now func() time.Time) *Limiter {
	l := &Limiter{host: host, now: now, used: map[int64]int{}, jobsUsed: map[int64]int{}, inflight: map[*reservation]struct{}{},
		initLock: make(chan struct{}, 1)}
	l.setLimitLocked(defaultWeightLimit, defaultWeightWindow)
	return l
}

// Stats returns a snapshot of the limiter.
func (l *Limiter) Stats() LimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	s := LimiterStats{
		Host: l.host, Limit: l.limit, Budget: l.budgetLocked(), Window: l.window,
		Used: l.usedLocked(l.windowOf(now)), Waits: l.waits, WaitTime: l.waitTime,
		RateLimited: l.limited429, Banned: l.banned418, Firewalled: l.firewalled, ServerErrors: l.server5xx,
		JobsUsed: l.jobsUsed[l.windowOf(now)], JobsBudget: l.jobsBudgetLocked(),
	}
	for r := range l.inflight {
		s.InFlight += r.weight
	}
	if now.Before(l.blocked) {
		s.BlockedUntil = l.blocked
	}
	return s
}

// lockInit takes the init lock, or fails when ctx is done first.
func (l *Limiter) lockInit(ctx context.Context) error {
	select {
	case l.initLock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for another call to read the weight limit: %w", context.Cause(ctx))
	}
}

func (l *Limiter) unlockInit() { <-l.initLock }

func (l *Limiter) isConfigured() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.configured
}

// configure sets the limit and window (from exchangeInfo.rateLimits or Config.WeightLimit).
func (l *Limiter) configure(limit int, window time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLimitLocked(limit, window)
	l.configured = true
}

func (l *Limiter) setLimitLocked(limit int, window time.Duration) {
	l.limit = limit
	if window == l.window {
		return
	}
	// Window indices change meaning: start counting afresh, calls in flight included.
	l.window = window
	l.baseGuard = min(time.Second, max(10*time.Millisecond, window/60))
	l.setGuardLocked()
	l.header = usedWeightHeader(window)
	clear(l.used)
	clear(l.jobsUsed)
	for r := range l.inflight {
		r.first = l.windowOf(r.sent.Add(-l.guard))
		r.last = r.first - 1
	}
	// What the exchange has counted so far (exchangeInfo, which brings the new window, for one)
	// is known only from the latest answer's header for the new window.
	if v, err := strconv.Atoi(l.lastHeader.Get(l.header)); err == nil {
		for k := l.windowOf(l.lastSent.Add(-l.guard)); k <= l.windowOf(l.lastRecv.Add(l.guard)); k++ {
			l.used[k] = max(l.usedLocked(k), v)
		}
	}
}

// setClockOffset records the exchange clock's offset from the local one, so windows align with
// the exchange's, and how far the measurement may be off.
func (l *Limiter) setClockOffset(d, uncertainty time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offset, l.offsetErr = d, uncertainty
	l.setGuardLocked()
}

func (l *Limiter) setGuardLocked() {
	l.guard = min(l.window/4, max(l.baseGuard, l.offsetErr))
}

func (l *Limiter) budgetLocked() int {
	return l.limit - l.limit/10
}

// jobsBudgetLocked is what calls other than ClassTicks may spend per window: the budget less
// the ticks' reserve.
func (l *Limiter) jobsBudgetLocked() int {
	b := l.budgetLocked()
	return b - b*l.tickReservePct/100
}

// SetTickReserve keeps pct percent (0..100) of every window's budget for ClassTicks calls:
// market jobs and backfill together never spend more than the rest, while ticks may use
// whatever the jobs leave idle. 0 (the default) puts every class in one pool.
func (l *Limiter) SetTickReserve(pct int) error {
	if pct < 0 || pct > 100 {
		return fmt.Errorf("exchange limiter %s: tick reserve %d%% is outside 0..100", l.host, pct)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tickReservePct = pct
	return nil
}

// Class is the kind of caller a call is made for; the limiter keeps the ticks' reserve from the
// other classes (SetTickReserve).
type Class int

const (
	// ClassJobs is market jobs (fetch_klines, fetch_orderbook, …): the default.
	ClassJobs Class = iota
	// ClassTicks is tick sampling, which the reserve is kept for.
	ClassTicks
	// ClassBackfill is backfill and repair; it shares the jobs' part of the budget.
	ClassBackfill
)

func (c Class) String() string {
	switch c {
	case ClassTicks:
		return "ticks"
	case ClassBackfill:
		return "backfill"
	default:
		return "jobs"
	}
}

type classKey struct{}

// WithClass returns a context whose calls are counted as class c.
func WithClass(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

// ClassOf is the class of calls made with ctx (ClassJobs when none was set).
func ClassOf(ctx context.Context) Class {
	c, _ := ctx.Value(classKey{}).(Class)
	return c
}

// windowOf is the index of the exchange window containing local time t.
func (l *Limiter) windowOf(t time.Time) int64 {
	ms, w := t.Add(l.offset).UnixMilli(), l.window.Milliseconds()
	k := ms / w
	if ms%w < 0 {
		k--
	}
	return k
}

// windowStart is when window k starts, on the local clock.
func (l *Limiter) windowStart(k int64) time.Time {
	return time.UnixMilli(k * l.window.Milliseconds()).Add(-l.offset)
}

// usedLocked is the weight counted in window k. A window's count starts with the calls still in
// flight when it is first looked at: they may land in it.
func (l *Limiter) usedLocked(k int64) int {
	if v, ok := l.used[k]; ok {
		return v
	}
	v, j := 0, 0
	for r := range l.inflight {
		if r.last < k {
			v += r.weight
			if r.class != ClassTicks {
				j += r.weight
			}
			r.last = k
		}
	}
	l.used[k], l.jobsUsed[k] = v, j
	for old := range l.used {
		if old < k-2 {
			delete(l.used, old)
			delete(l.jobsUsed, old)
		}
	}
	return v
}

// reservation is one call's claim on the budget, returned to the limiter by finish.
type reservation struct {
	weight      int
	class       Class
	sent        time.Time
	first, last int64 // windows it is counted in
}

// acquire reserves weight, first waiting for any 429/418 Retry-After to pass and, if a window
// the call may land in has no budget left, for that window to end. A call that would have to
// wait past ctx's deadline fails at once.
func (l *Limiter) acquire(ctx context.Context, weight int) (*reservation, error) {
	class := ClassOf(ctx)
	waited := false
	start := l.now()
	defer func() {
		if waited {
			l.mu.Lock()
			l.waits++
			l.waitTime += l.now().Sub(start)
			l.mu.Unlock()
		}
	}()
	for {
		l.mu.Lock()
		now := l.now()
		if now.Before(l.blocked) {
			until, cause := l.blocked, l.blockedBy
			l.mu.Unlock()
			waited = true
			if err := l.sleepUntil(ctx, until, cause); err != nil {
				return nil, err
			}
			continue
		}
		lo, hi := l.windowOf(now.Add(-l.guard)), l.windowOf(now.Add(l.guard))
		var until time.Time
		for k := lo; k <= hi; k++ {
			// A call heavier than the whole budget still goes out alone in a fresh window.
			if u := l.usedLocked(k); u > 0 && u+weight > l.budgetLocked() {
				until = l.windowStart(k + 1).Add(l.guard)
			}
			// Other classes stop at the jobs' part, so the ticks' reserve stays free.
			if j := l.jobsUsed[k]; class != ClassTicks && j > 0 && j+weight > l.jobsBudgetLocked() {
				until = l.windowStart(k + 1).Add(l.guard)
			}
		}
		if !until.IsZero() {
			l.mu.Unlock()
			waited = true
			if err := l.sleepUntil(ctx, until, nil); err != nil {
				return nil, err
			}
			continue
		}
		r := &reservation{weight: weight, class: class, sent: now, first: lo, last: hi}
		for k := lo; k <= hi; k++ {
			l.used[k] += weight
			if class != ClassTicks {
				l.jobsUsed[k] += weight
			}
		}
		l.inflight[r] = struct{}{}
		l.mu.Unlock()
		return r, nil
	}
}

// finish returns a reservation once its answer is in (h nil: no answer). The call is counted in
// every window up to its answer (plus the guard). If it was sent and answered within one window,
// that window's count is raised to the exchange's used-weight header when that is higher. 429 and
// 418 block the host until Retry-After has passed, 403 (the firewall) for defaultFirewallPause.
func (l *Limiter) finish(r *reservation, status int, h http.Header) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.inflight, r)
	now := l.now()
	hi := l.windowOf(now.Add(l.guard))
	for k := r.last + 1; k <= hi; k++ {
		l.usedLocked(k)
		l.used[k] += r.weight
		if r.class != ClassTicks {
			l.jobsUsed[k] += r.weight
		}
	}
	r.last = max(r.last, hi)
	if h == nil {
		return
	}
	l.lastHeader, l.lastSent, l.lastRecv = h, r.sent, now
	if r.first == r.last {
		if v, err := strconv.Atoi(h.Get(l.header)); err == nil && v > l.usedLocked(r.first) {
			l.used[r.first] = v
		}
	}
	switch status {
	case http.StatusTooManyRequests:
		l.limited429++
		cur := l.windowOf(now)
		until := l.windowStart(cur + 1).Add(l.guard)
		if ra := retryAfter(h, now); ra > 0 {
			until = now.Add(ra)
		}
		l.blockLocked(until, ErrRateLimited)
	case http.StatusTeapot:
		l.banned418++
		pause := retryAfter(h, now)
		if pause <= 0 {
			pause = defaultBanPause
		}
		l.blockLocked(now.Add(pause), ErrBanned)
	case http.StatusForbidden:
		l.firewalled++
		pause := retryAfter(h, now)
		if pause <= 0 {
			pause = defaultFirewallPause
		}
		l.blockLocked(now.Add(pause), ErrFirewall)
	default:
		if status >= 500 {
			l.server5xx++
		}
	}
}

func (l *Limiter) blockLocked(until time.Time, cause error) {
	if until.After(l.blocked) {
		l.blocked, l.blockedBy = until, cause
	} else if cause == ErrBanned || cause == ErrFirewall {
		l.blockedBy = cause
	}
}

// sleepUntil waits for the local clock to reach until, or fails at once if ctx's deadline comes
// first. cause (a sentinel, or nil for a window wait) is wrapped in that error. The clock is
// taken to run at the real rate (an injected clock is the real one shifted), so a timer waits.
func (l *Limiter) sleepUntil(ctx context.Context, until time.Time, cause error) error {
	d := until.Sub(l.now())
	if d <= 0 {
		return ctx.Err()
	}
	what := "request weight budget spent"
	if cause != nil {
		what = cause.Error()
	}
	// The deadline is on the real clock, until on the local one: compare what is left of each.
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		err := fmt.Errorf("%s until %s, past the context deadline: %w", what, until.Format(time.RFC3339Nano), context.DeadlineExceeded)
		if cause != nil {
			err = errors.Join(err, cause)
		}
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting: %s: %w", what, context.Cause(ctx))
	case <-t.C:
		return nil
	}
}

// retryAfter reads Retry-After (seconds, or an HTTP date), within 0..maxRetryAfter: a date in
// the past is no wait, and a huge number of seconds neither overflows nor blocks for years.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case s <= 0:
			return 0
		case s > int64(maxRetryAfter/time.Second):
			return maxRetryAfter
		}
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// usedWeightHeader is the header reporting the weight used in a window, e.g.
// X-Mbx-Used-Weight-1m (header names are case-insensitive; Binance sends X-MBX-USED-WEIGHT-1M).
func usedWeightHeader(window time.Duration) string {
	n, unit := window/time.Second, "s"
	switch {
	case window%(24*time.Hour) == 0:
		n, unit = window/(24*time.Hour), "d"
	case window%time.Hour == 0:
		n, unit = window/time.Hour, "h"
	case window%time.Minute == 0:
		n, unit = window/time.Minute, "m"
	}
	return http.CanonicalHeaderKey("X-MBX-USED-WEIGHT-" + strconv.Itoa(int(n)) + unit)
}

// rateLimitWindow converts a rateLimits entry's interval to a duration; false for an unknown
// interval or a window outside 1 s..maxWeightWindow (a huge intervalNum would overflow).
func rateLimitWindow(interval string, num int) (time.Duration, bool) {
	if num <= 0 {
		return 0, false
	}
	var unit time.Duration
	switch interval {
	case "SECOND":
		unit = time.Second
	case "MINUTE":
		unit = time.Minute
	case "HOUR":
		unit = time.Hour
	case "DAY":
		unit = 24 * time.Hour
	default:
		return 0, false
	}
	if num > int(maxWeightWindow/unit) {
		return 0, false
	}
	return time.Duration(num) * unit, true
}
