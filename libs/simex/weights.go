package simex

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

func constWeight(w int) func(url.Values) int { return func(url.Values) int { return w } }

// ticker24hWeight: 2 for symbol or 1–20 symbols, 40 for 21–100, 80 above or for all.
func ticker24hWeight(q url.Values) int {
	if q.Get("symbol") != "" {
		return 2
	}
	n := countSymbols(q.Get("symbols"))
	switch {
	case n == 0 || n > 100:
		return 80
	case n > 20:
		return 40
	default:
		return 2
	}
}

// tickerPriceWeight: 2 for symbol, 4 for symbols or all.
func tickerPriceWeight(q url.Values) int {
	if q.Get("symbol") != "" {
		return 2
	}
	return 4
}

// depthWeight: 5 up to limit 100 (the default), 25 up to 500, 50 up to 1000, 250 above.
func depthWeight(q url.Values) int {
	limit, err := strconv.Atoi(q.Get("limit"))
	switch {
	case err != nil || limit <= 100:
		return 5
	case limit <= 500:
		return 25
	case limit <= 1000:
		return 50
	default:
		return 250
	}
}

// countSymbols counts the entries of a symbols=["A","B"] parameter without decoding it.
func countSymbols(s string) int {
	if strings.TrimSpace(strings.Trim(s, "[]")) == "" {
		return 0
	}
	return strings.Count(s, ",") + 1
}

// weightBook keeps each client's weight in the current window, its 429s and its bans.
type weightBook struct {
	window      time.Duration
	banAfter    int
	banDuration time.Duration
	header      string // X-MBX-USED-WEIGHT-<n><unit>

	mu      sync.Mutex
	limit   int // negative: none
	clients map[string]*clientWeight
	forced  int // status to force on the next request, 0 if none
	forceD  time.Duration
}

type clientWeight struct {
	window       int64 // window start, Unix ms
	used         int
	limitedUntil time.Time // a 429 is in force
	strikes      int       // requests while limited
	bannedUntil  time.Time
	bans         int
}

func newWeightBook(cfg Config) *weightBook {
	return &weightBook{
		window: cfg.WeightWindow, banAfter: cfg.BanAfter, banDuration: cfg.BanDuration,
		header: "X-MBX-USED-WEIGHT-" + windowSuffix(cfg.WeightWindow),
		limit:  cfg.WeightLimit, clients: map[string]*clientWeight{},
	}
}

// windowSuffix names a window as Binance does in headers: 1M (one minute), 10S, 1H, 1D.
func windowSuffix(d time.Duration) string {
	n, unit := d/time.Second, "S"
	switch {
	case d%(24*time.Hour) == 0:
		n, unit = d/(24*time.Hour), "D"
	case d%time.Hour == 0:
		n, unit = d/time.Hour, "H"
	case d%time.Minute == 0:
		n, unit = d/time.Minute, "M"
	}
	return strconv.Itoa(int(n)) + unit
}

// rateLimitInterval is the window as exchangeInfo reports it.
func rateLimitInterval(d time.Duration) (string, int) {
	switch {
	case d%(24*time.Hour) == 0:
		return "DAY", int(d / (24 * time.Hour))
	case d%time.Hour == 0:
		return "HOUR", int(d / time.Hour)
	case d%time.Minute == 0:
		return "MINUTE", int(d / time.Minute)
	default:
		return "SECOND", int(d / time.Second)
	}
}

func (b *weightBook) setLimit(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = n
}

// reportedLimit is the limit exchangeInfo reports: a huge one when there is none, so clients
// never hold back.
func (b *weightBook) reportedLimit() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit < 0 {
		return 1 << 30
	}
	return b.limit
}

func (b *weightBook) force(status int, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forced, b.forceD = status, max(d, time.Second)
}

// admission is the weight book's verdict on a request: status 0 lets it through.
type admission struct {
	status     int
	retryAfter time.Duration
	body       []byte
	headers    map[string]string
}

// admit counts a request's weight for its client and decides whether it is served. The clock is
// read under the lock so that windows only move forward.
// inject is a status (429 or 418) a fault rate picked for this request, 0 for none: it acts as a
// forced one would, for this request's client only.
func (b *weightBook) admit(ip string, weight int, clock func() time.Time, inject int) (a admission) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := clock()
	c := b.clients[ip]
	if c == nil {
		if len(b.clients) > 100_000 {
			clear(b.clients) // a flood of one-off clients; forgetting them is harmless
		}
		c = &clientWeight{}
		b.clients[ip] = c
	}
	wms := b.window.Milliseconds()
	nowMs := now.UnixMilli()
	if start := nowMs - nowMs%wms; start > c.window {
		c.window, c.used = start, 0
	}
	defer func() {
		used := strconv.Itoa(c.used)
		a.headers = map[string]string{b.header: used, "X-MBX-USED-WEIGHT": used}
	}()

	forced, d := b.forced, b.forceD
	switch {
	case forced != 0:
		b.forced = 0
	case inject == http.StatusTooManyRequests:
		forced, d = inject, time.Second
	case inject == http.StatusTeapot:
		forced, d = inject, min(maxBan, b.banDuration<<min(c.bans, 20))
	}
	switch forced {
	case http.StatusTooManyRequests:
		c.limitedUntil, c.strikes = now.Add(d), 0
		return b.tooMany(d)
	case http.StatusTeapot:
		c.bannedUntil = now.Add(d)
		c.bans++
		return b.banned(d, c.bannedUntil)
	}
	if now.Before(c.bannedUntil) {
		return b.banned(c.bannedUntil.Sub(now), c.bannedUntil)
	}
	if now.Before(c.limitedUntil) {
		// Calling on after a 429 earns a ban, longer each time.
		c.strikes++
		if c.strikes <= b.banAfter {
			return b.tooMany(c.limitedUntil.Sub(now))
		}
		d := min(maxBan, b.banDuration<<min(c.bans, 20))
		c.bans++
		c.bannedUntil, c.limitedUntil, c.strikes = now.Add(d), time.Time{}, 0
		return b.banned(d, c.bannedUntil)
	}
	c.used += weight
	if b.limit >= 0 && c.used > b.limit {
		windowEnd := time.UnixMilli(c.window + wms)
		c.limitedUntil, c.strikes = windowEnd, 0
		return b.tooMany(windowEnd.Sub(now))
	}
	return admission{}
}

func (b *weightBook) tooMany(d time.Duration) admission {
	iv, n := rateLimitInterval(b.window)
	return admission{status: http.StatusTooManyRequests, retryAfter: d, body: errBody(-1003, fmt.Sprintf(
		"Too much request weight used; current limit is %d request weight per %d %s. Please use WebSocket Streams for live updates to avoid polling the API.",
		b.limit, n, iv))}
}

func (b *weightBook) banned(d time.Duration, until time.Time) admission {
	return admission{status: http.StatusTeapot, retryAfter: d, body: errBody(-1003, fmt.Sprintf(
		"Way too much request weight used; IP banned until %d. Please use WebSocket Streams for live updates to avoid bans.",
		until.UnixMilli()))}
}
