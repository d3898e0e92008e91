package simex

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The market streams, as Binance's spot stream endpoints serve them (stream.binance.com:9443):
// raw streams on /ws/<stream> (and /ws, subscribed later), combined streams on
// /stream?streams=<a>/<b> whose payloads are wrapped {"stream":…,"data":…}; SUBSCRIBE,
// UNSUBSCRIBE and LIST_SUBSCRIPTIONS requests; and the exchange's rules: at most 1,024 streams
// and 5 incoming messages a second per connection (the connection is closed beyond), a ping every
// 20 s that must be answered within a minute, connections cut after 24 hours, and at most 300
// connection attempts per IP every 5 minutes.
//
// Streams served: <symbol>@depth@100ms and <symbol>@depth (diff depth, every 100 ms or 1 s) and
// <symbol>@depth<N>@100ms, <symbol>@depth<N> with N in 5, 10, 20 (partial depth). Their books
// are the REST depth's (same levels, same lastUpdateId sequence). A diff carries every level of
// the best Band of each side that changed or came into the band (the price moved), and every
// level that left the side; a level that only sank below the band is not followed. So a local
// book built by Binance's procedure from a snapshot of at least Band levels holds the REST book's
// best Band levels exactly. And <symbol>@ticker and <symbol>@miniTicker (the 24-hour rolling
// window ticker, full and mini, every 1 s), whose values are REST ticker/24hr's at the event's
// time E. Events go out in rounds just past each 100 ms boundary of the exchange's clock; each
// 1 s stream has its own phase within the second (StreamPhase), so a connection's rounds carry
// even loads.

// StreamConfig holds the stream endpoints' rules; the zero value is Binance's.
type StreamConfig struct {
	// Interval is how often events are written (the 100 ms streams' pace). Default 100 ms.
	Interval time.Duration
	// Band is how many levels of each side diff events cover. Default 100 (what a sampler
	// reads; a real exchange streams every level).
	Band int
	// MaxStreams per connection. Default 1024.
	MaxStreams int
	// MaxIncomingPerSecond is how many messages a client may send per second. Default 5.
	MaxIncomingPerSecond int
	// PingInterval and PongTimeout: the exchange pings every PingInterval and closes a
	// connection whose pong has not come within PongTimeout. Defaults 20 s and 1 minute.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// MaxAge is when a connection is cut, by the exchange's clock. Default 24 hours.
	MaxAge time.Duration
	// MaxAttempts connection attempts per IP per AttemptWindow. Defaults 300 and 5 minutes.
	MaxAttempts   int
	AttemptWindow time.Duration
}

func (c StreamConfig) withDefaults() StreamConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Interval, 100*time.Millisecond)
	def(&c.PingInterval, 20*time.Second)
	def(&c.PongTimeout, time.Minute)
	def(&c.MaxAge, 24*time.Hour)
	def(&c.AttemptWindow, 5*time.Minute)
	if c.Band <= 0 {
		c.Band = 100
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 1024
	}
	if c.MaxIncomingPerSecond <= 0 {
		c.MaxIncomingPerSecond = 5
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 300
	}
	return c
}

// StreamFaults are stream failures switched with SetStreamFaults.
type StreamFaults struct {
	// Stall stops every event on every connection; connections stay open and pings go on.
	Stall bool
	// StallSymbols stops the events of these symbols only.
	StallSymbols []string
	// IgnorePings leaves the client's pings unanswered (a half-dead connection), on market and
	// user data streams.
	IgnorePings bool
	// UserStreamDown closes every user data stream connection and refuses new ones (503)
	// while set; the listenKeys stay valid.
	UserStreamDown bool
}

// StreamStats counts what the stream endpoints have done.
type StreamStats struct {
	Connections      int   // open now
	Accepted         int64 // connections accepted
	Refused          int64 // connection attempts refused (attempt limit)
	Closed           map[string]int64
	Events           int64 // events written
	Subscribes       int64 // SUBSCRIBE requests answered
	ActiveSubscribed int   // streams subscribed over open connections
}

// streamHub is the exchange's stream side: its connections and counters.
type streamHub struct {
	cfg StreamConfig

	mu       sync.Mutex
	conns    map[*streamConn]struct{}
	faults   StreamFaults
	stalled  map[string]bool
	gaps     int // pending gaps: each stream of each connection skips this many updates once
	attempts map[string][]time.Time
	accepted int64
	refused  int64
	closed   map[string]int64
	events   int64
	subs     int64
}

func newStreamHub(cfg StreamConfig) *streamHub {
	return &streamHub{cfg: cfg.withDefaults(), conns: map[*streamConn]struct{}{}, attempts: map[string][]time.Time{}, closed: map[string]int64{}}
}

// SetStreamFaults switches the stream faults.
func (e *Exchange) SetStreamFaults(f StreamFaults) {
	h := e.streams
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = f
	h.stalled = make(map[string]bool, len(f.StallSymbols))
	for _, s := range f.StallSymbols {
		h.stalled[s] = true
	}
}

// DropStreams closes every stream connection at once, as an exchange-side disconnect does.
func (e *Exchange) DropStreams() {
	for _, c := range e.streams.snapshot() {
		c.close(websocket.StatusGoingAway, "dropped")
	}
}

// InjectStreamGap makes every diff-depth stream of every open connection skip one update: the
// next event's U is not the previous u+1, which a client must answer with a resync.
func (e *Exchange) InjectStreamGap() {
	for _, c := range e.streams.snapshot() {
		c.mu.Lock()
		for _, s := range c.subs {
			if s.diff {
				s.skip++
			}
		}
		c.mu.Unlock()
	}
}

// StreamStats returns the stream counters.
func (e *Exchange) StreamStats() StreamStats {
	h := e.streams
	conns := h.snapshot()
	h.mu.Lock()
	st := StreamStats{Connections: len(conns), Accepted: h.accepted, Refused: h.refused, Events: h.events, Subscribes: h.subs,
		Closed: make(map[string]int64, len(h.closed))}
	for k, v := range h.closed {
		st.Closed[k] = v
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		st.ActiveSubscribed += len(c.subs)
		c.mu.Unlock()
	}
	return st
}

func (h *streamHub) snapshot() []*streamConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*streamConn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// admit counts a connection attempt from ip; false when the attempt limit is reached.
func (h *streamHub) admit(ip string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	recent := h.attempts[ip][:0]
	for _, t := range h.attempts[ip] {
		if now.Sub(t) < h.cfg.AttemptWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= h.cfg.MaxAttempts {
		h.attempts[ip] = recent
		h.refused++
		return false
	}
	h.attempts[ip] = append(recent, now)
	return true
}

// stream is one subscribed stream of a connection.
type stream struct {
	name   string
	m      *market
	diff   bool // diff depth; else partial depth, unless ticker
	ticker bool // a 24-hour ticker stream; mini: the mini ticker
	mini   bool
	depth  int   // partial depth levels
	every  int64 // snapshots between events: 1 (100 ms) or 10 (1 s)
	// phase is the snapshot within every a stream's events fall on: the 1 s streams of a
	// connection spread over its rounds (by name) instead of all landing in one every second,
	// which then took long enough to hold back the 100 ms streams' events written with it.
	phase int64
	last  int64 // the snapshot the last event (or the subscription) was at
	skip  int   // updates to skip once (InjectStreamGap)
}

// parseStream reads a stream name; names are lower case, as Binance's are.
func (e *Exchange) parseStream(name string, snap int64) (*stream, error) {
	sym, kind, ok := strings.Cut(name, "@")
	if !ok || sym != strings.ToLower(sym) {
		return nil, fmt.Errorf("invalid stream name %q", name)
	}
	m := e.markets[strings.ToUpper(sym)]
	if m == nil {
		return nil, fmt.Errorf("unknown symbol in stream %q", name)
	}
	s := &stream{name: name, m: m, every: 10}
	kind, fast := strings.CutSuffix(kind, "@100ms")
	if fast {
		s.every = 1
	}
	switch {
	case kind == "ticker" || kind == "miniTicker":
		if fast {
			return nil, fmt.Errorf("invalid stream name %q: ticker streams have no @100ms", name)
		}
		s.ticker, s.mini = true, kind == "miniTicker"
	case kind == "depth":
		s.diff = true
	case strings.HasPrefix(kind, "depth"):
		n, err := strconv.Atoi(kind[len("depth"):])
		if err != nil || (n != 5 && n != 10 && n != 20) {
			return nil, fmt.Errorf("invalid stream name %q: partial depth levels are 5, 10 or 20", name)
		}
		s.depth = n
	default:
		return nil, fmt.Errorf("unsupported stream %q (served: <symbol>@depth[@100ms], <symbol>@depth<5|10|20>[@100ms], <symbol>@ticker, <symbol>@miniTicker)", name)
	}
	s.phase = int64(hashString(name) % uint64(s.every))
	s.last = snap - floorMod(snap-s.phase, s.every)
	return s, nil
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// streamConn is one client connection.
type streamConn struct {
	e        *Exchange
	ws       *websocket.Conn
	cork     *corkConn // under ws: writeLoop batches each interval's events
	combined bool
	opened   time.Time
	cancel   context.CancelFunc

	mu     sync.Mutex
	subs   map[string]*stream
	inSec  int64 // the second incoming messages are counted in
	inN    int
	closed bool
}

// serveStream upgrades a /ws or /stream request.
func (e *Exchange) serveStream(w http.ResponseWriter, r *http.Request) {
	h := e.streams
	now := e.now()
	if !h.admit(clientIP(r), now) {
		e.reply(w, r, http.StatusTooManyRequests, errBody(-1003, "Too many connection attempts; try again later."))
		return
	}
	var names []string
	combined := r.URL.Path == "/stream"
	switch {
	case combined:
		if q := r.URL.Query().Get("streams"); q != "" {
			names = strings.Split(q, "/")
		}
	case r.URL.Path == "/ws" || r.URL.Path == "/ws/":
	default:
		names = strings.Split(strings.TrimPrefix(r.URL.Path, "/ws/"), "/")
	}
	snap := snapOf(now.UnixMilli())
	c := &streamConn{e: e, combined: combined, opened: now, subs: map[string]*stream{}}
	if len(names) > h.cfg.MaxStreams {
		e.reply(w, r, http.StatusBadRequest, errBody(-1000, fmt.Sprintf("Too many streams: %d > %d.", len(names), h.cfg.MaxStreams)))
		return
	}
	for _, n := range names {
		s, err := e.parseStream(n, snap)
		if err != nil {
			e.reply(w, r, http.StatusBadRequest, errBody(-1000, err.Error()))
			return
		}
		c.subs[n] = s
	}
	cw := &corkingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return !h.faults.IgnorePings
		},
	})
	if err != nil {
		return // Accept has answered the request
	}
	ws.SetReadLimit(1 << 20)
	c.ws, c.cork = ws, cw.conn
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c.cancel = cancel
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.accepted++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		cancel()
	}()
	done := make(chan struct{})
	go func() { defer close(done); c.readLoop(ctx) }()
	go c.pingLoop(ctx)
	c.writeLoop(ctx)
	<-done
}

func (c *streamConn) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	h := c.e.streams
	h.mu.Lock()
	h.closed[reason]++
	h.mu.Unlock()
	c.e.cfg.Logger.Debug("simex stream closed", slog.String("reason", reason))
	// Close waits for the client's close frame for up to 5 s; the loops stop at once.
	go func() {
		_ = c.cork.release() // the events held before the close frame
		_ = c.ws.Close(code, reason)
	}()
	c.cancel()
}

// request is a client's SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS.
type request struct {
	Method string          `json:"method"`
	Params []string        `json:"params"`
	ID     json.RawMessage `json:"id"`
}

func (c *streamConn) readLoop(ctx context.Context) {
	h := c.e.streams
	for {
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			c.close(websocket.StatusNormalClosure, "client gone")
			return
		}
		now := c.e.now()
		c.mu.Lock()
		if sec := now.Unix(); sec != c.inSec {
			c.inSec, c.inN = sec, 0
		}
		c.inN++
		over := c.inN > h.cfg.MaxIncomingPerSecond
		c.mu.Unlock()
		if over {
			c.close(websocket.StatusPolicyViolation, "too many messages")
			return
		}
		var req request
		if err := json.Unmarshal(data, &req); err != nil || len(req.ID) == 0 {
			c.send([]byte(`{"error":{"code":3,"msg":"Invalid JSON: expected an object with method and id"},"id":null}`))
			continue
		}
		c.send(c.handle(req, snapOf(now.UnixMilli())))
	}
}

// handle answers one request.
func (c *streamConn) handle(req request, snap int64) []byte {
	h := c.e.streams
	fail := func(code int, msg string) []byte {
		b, _ := json.Marshal(struct {
			Error struct {
				Code int    `json:"code"`
				Msg  string `json:"msg"`
			} `json:"error"`
			ID json.RawMessage `json:"id"`
		}{Error: struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		}{code, msg}, ID: req.ID})
		return b
	}
	ok := func(result any) []byte {
		b, _ := json.Marshal(struct {
			Result any             `json:"result"`
			ID     json.RawMessage `json:"id"`
		}{result, req.ID})
		return b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch req.Method {
	case "SUBSCRIBE":
		added := map[string]*stream{}
		for _, n := range req.Params {
			if c.subs[n] != nil || added[n] != nil {
				continue
			}
			s, err := c.e.parseStream(n, snap)
			if err != nil {
				return fail(2, "Invalid request: "+err.Error())
			}
			added[n] = s
		}
		if len(c.subs)+len(added) > h.cfg.MaxStreams {
			return fail(2, fmt.Sprintf("Invalid request: a connection can listen to at most %d streams", h.cfg.MaxStreams))
		}
		for n, s := range added {
			c.subs[n] = s
		}
		h.mu.Lock()
		h.subs++
		h.mu.Unlock()
		return ok(nil)
	case "UNSUBSCRIBE":
		for _, n := range req.Params {
			delete(c.subs, n)
		}
		return ok(nil)
	case "LIST_SUBSCRIPTIONS":
		names := make([]string, 0, len(c.subs))
		for n := range c.subs {
			names = append(names, n)
		}
		return ok(names)
	}
	return fail(1, fmt.Sprintf("Invalid request: unknown method %q", req.Method))
}

// send writes one reply, or an event while the connection is corked (held, then written in
// the interval's batch; a large batch is written out at once).
func (c *streamConn) send(b []byte) bool {
	if err := c.cork.writeText(b); err != nil {
		if !errors.Is(err, errReleased) {
			c.close(websocket.StatusInternalError, "write failed")
		}
		return false
	}
	if c.cork.heldBytes() >= maxHeld {
		if !c.flushHeld() {
			return false
		}
		c.cork.cork()
	}
	return true
}

// maxHeld is how many bytes of events a connection holds before writing them.
const maxHeld = 256 << 10

// flushHeld writes the held events and uncorks the connection.
func (c *streamConn) flushHeld() bool {
	if err := c.cork.uncork(); err != nil {
		c.close(websocket.StatusInternalError, "write failed")
		return false
	}
	return true
}

// pingLoop pings every PingInterval and closes the connection when a pong does not come in time.
func (c *streamConn) pingLoop(ctx context.Context) {
	cfg := c.e.streams.cfg
	t := time.NewTicker(cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.PongTimeout)
		err := c.ws.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.close(websocket.StatusPolicyViolation, "pong timeout")
			}
			return
		}
	}
}

// writeLoop writes every stream's events at Interval until the connection ends or reaches MaxAge,
// each round just after a boundary of the exchange's clock (a multiple of Interval), as the
// books change at those boundaries. A free-running ticker's phase would put some rounds on
// either side of a boundary by jitter alone: one round would then find nothing due and the
// streams would skip an update, as Binance's 100 ms streams do not.
func (c *streamConn) writeLoop(ctx context.Context) {
	h := c.e.streams
	t := time.NewTimer(nextRound(c.e.now(), h.cfg.Interval))
	defer t.Stop()
	var scratch [2][]level
	var bids, asks []level
	fold := newDiffFold()
	buf := make([]byte, 0, 4096)
	var due []*stream
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := c.e.now()
		t.Reset(nextRound(now, h.cfg.Interval))
		if now.Sub(c.opened) >= h.cfg.MaxAge {
			c.close(websocket.StatusGoingAway, "24-hour cutoff")
			return
		}
		h.mu.Lock()
		stallAll, stalled := h.faults.Stall, h.stalled
		h.mu.Unlock()
		halted := c.e.haltedSymbols()
		if stallAll {
			continue
		}
		snap := snapOf(now.UnixMilli())
		c.mu.Lock()
		due = due[:0]
		for _, s := range c.subs {
			// A symbol out of TRADING has no market: its streams send nothing (its REST book
			// is empty, its ticker idle).
			if snap-s.last >= s.every && !stalled[s.m.symbol] && !halted[s.m.symbol] {
				due = append(due, s)
			}
		}
		c.mu.Unlock()
		var n int64
		c.cork.cork()
		for _, s := range due {
			to := snap - floorMod(snap-s.phase, s.every)
			buf = buf[:0]
			if c.combined {
				buf = append(buf, `{"stream":"`...)
				buf = append(buf, s.name...)
				buf = append(buf, `","data":`...)
			}
			switch {
			case s.ticker:
				buf = s.m.appendTickerEvent(buf, s.mini, now.UnixMilli())
			case s.diff:
				c.mu.Lock()
				from := s.last
				if s.skip > 0 {
					from += int64(s.skip)
					s.skip = 0
				}
				c.mu.Unlock()
				if to-from > maxCatchUp {
					// Too far behind (the exchange's clock jumped): the stream skips ahead, and
					// the client sees a gap, as after a real stall.
					from = to - maxCatchUp
				}
				s.m.streamMu.Lock()
				if s.m.levels == nil {
					s.m.levels = new(levelCache)
				}
				bids, asks = fold.diff(s.m, from, to, h.cfg.Band, &scratch, s.m.levels)
				s.m.streamMu.Unlock()
				buf = append(buf, `{"e":"depthUpdate","E":`...)
				buf = appendInt(buf, now.UnixMilli())
				buf = append(buf, `,"s":"`...)
				buf = append(buf, s.m.symbol...)
				buf = append(buf, `","U":`...)
				buf = appendInt(buf, s.m.updateIDOf(from)+1)
				buf = append(buf, `,"u":`...)
				buf = appendInt(buf, s.m.updateIDOf(to))
				buf = append(buf, `,"b":[`...)
				buf = appendLevels(buf, s.m, bids)
				buf = append(buf, `],"a":[`...)
				buf = appendLevels(buf, s.m, asks)
				buf = append(buf, "]}"...)
			default:
				bk := s.m.bookAt(to)
				buf = append(buf, `{"lastUpdateId":`...)
				buf = appendInt(buf, bk.updateID)
				buf = append(buf, `,"bids":[`...)
				buf = bk.appendSide(buf, s.m, false, s.depth)
				buf = append(buf, `],"asks":[`...)
				buf = bk.appendSide(buf, s.m, true, s.depth)
				buf = append(buf, "]}"...)
			}
			if c.combined {
				buf = append(buf, '}')
			}
			c.mu.Lock()
			s.last = to
			c.mu.Unlock()
			if !c.send(buf) {
				return
			}
			n++
		}
		if !c.flushHeld() {
			return
		}
		h.mu.Lock()
		h.events += n
		h.mu.Unlock()
	}
}

// nextRound is how long after now the next write round is due: a twentieth of interval past the
// next multiple of interval on the exchange's clock, and never sooner than a tenth of interval
// (a clock held still or moved by hand still gets rounds at about interval).
func nextRound(now time.Time, interval time.Duration) time.Duration {
	d := interval - time.Duration(now.UnixNano()%int64(interval)) + interval/20
	if d < interval/10 {
		d += interval
	}
	return d
}

// bookVia is m's book at snap, through lc (nil: none).
func bookVia(lc *levelCache, m *market, snap int64) bookState {
	if lc == nil {
		return m.bookAt(snap)
	}
	return lc.book(m, snap)
}

// maxCatchUp is how many snapshots one diff event may fold: 10 s.
const maxCatchUp = 100

// diffFold merges the diffs of consecutive snapshots into one event, keeping each level's last
// size, as Binance merges the updates of its 100 ms or 1 s window: applied to the book of any
// snapshot in the window, the event gives the window's last book (a diff of the two end books
// alone would miss a level that came and went in between).
type diffFold struct {
	out [2][]level // the last diff's sides, reused
}

func newDiffFold() *diffFold { return &diffFold{} }

// With lc (the market's cache, its streamMu held; nil: none) the books' levels come through it.
func (f *diffFold) diff(m *market, from, to int64, band int, scratch *[2][]level, lc *levelCache) (bids, asks []level) {
	if to-from == 1 {
		a, b := bookVia(lc, m, from), bookVia(lc, m, to)
		f.out[0] = diffSide(f.out[0][:0], a, b, false, band, scratch, lc)
		f.out[1] = diffSide(f.out[1][:0], a, b, true, band, scratch, lc)
		return f.out[0], f.out[1]
	}
	// Every snapshot's changes in order, then each price's last: a stable sort by price keeps
	// a price's changes in time order.
	out := &f.out
	out[0], out[1] = out[0][:0], out[1][:0]
	prev := bookVia(lc, m, from)
	for sn := from + 1; sn <= to; sn++ {
		next := bookVia(lc, m, sn)
		out[0] = diffSide(out[0], prev, next, false, band, scratch, lc)
		out[1] = diffSide(out[1], prev, next, true, band, scratch, lc)
		prev = next
	}
	for i := range out {
		asc := i == 1
		slices.SortStableFunc(out[i], func(x, y level) int {
			if asc {
				return cmp.Compare(x.price, y.price)
			}
			return cmp.Compare(y.price, x.price)
		})
		ls := out[i][:0]
		for j, l := range out[i] {
			if j+1 < len(out[i]) && out[i][j+1].price == l.price {
				continue // a later change of the price follows
			}
			ls = append(ls, l)
		}
		out[i] = ls
	}
	return out[0], out[1]
}

// StreamPhase is when within its pace a stream's events are sent: a 1 s stream (a ticker, or a
// depth stream without @100ms) sends at that offset past each whole second of the exchange's
// clock; a 100 ms stream has none. 0 for a name that is not a stream.
func StreamPhase(name string) time.Duration {
	_, kind, ok := strings.Cut(name, "@")
	if !ok || strings.HasSuffix(kind, "@100ms") {
		return 0
	}
	return time.Duration(hashString(name)%10) * snapMs * time.Millisecond
}
