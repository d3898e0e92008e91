package exchange

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// DefaultStreamURL is Binance's spot market-stream endpoint.
const DefaultStreamURL = "wss://stream.binance.com:9443"

// StreamURLFor is the stream endpoint that goes with a REST base URL: Binance's for Binance's
// REST hosts (api.binance.com, api1…api4, api-gcp), else the same host with ws:// or wss:// (the
// simulated exchange serves both on one port).
func StreamURLFor(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("exchange: base URL %q: not an absolute URL", baseURL)
	}
	switch h := u.Hostname(); {
	case h == "api.binance.com", h == "api-gcp.binance.com",
		len(h) == len("api1.binance.com") && strings.HasPrefix(h, "api") && strings.HasSuffix(h, ".binance.com"):
		return DefaultStreamURL, nil
	}
	switch u.Scheme {
	case "http":
		return "ws://" + u.Host, nil
	case "https":
		return "wss://" + u.Host, nil
	}
	return "", fmt.Errorf("exchange: base URL %q: scheme %q, want http or https", baseURL, u.Scheme)
}

// Binance's documented stream rules (spot WebSocket streams).
const (
	// MaxStreamsPerConnection is how many streams one connection may listen to.
	MaxStreamsPerConnection = 1024
	// MaxIncomingPerSecond is how many messages (subscribes included) a client may send on one
	// connection per second before the exchange disconnects it.
	MaxIncomingPerSecond = 5
	// ConnectionMaxAge is when the exchange cuts a connection.
	ConnectionMaxAge = 24 * time.Hour
	// ConnectionAttempts per ConnectionAttemptWindow per IP.
	ConnectionAttempts      = 300
	ConnectionAttemptWindow = 5 * time.Minute
)

// FeedConfig configures a Feed; every field's comment says its default.
type FeedConfig struct {
	// URL is the stream endpoint's scheme and host, e.g. "ws://127.0.0.1:8090" for the
	// simulated exchange. Default DefaultStreamURL.
	URL string
	// StreamsPerConnection caps the streams of one connection. Default (and at most)
	// MaxStreamsPerConnection.
	StreamsPerConnection int
	// SendPerSecond is how many messages the feed sends per connection per second. Default 4,
	// under the exchange's 5 with room for its clock.
	SendPerSecond float64
	// StreamsPerRequest is how many streams one SUBSCRIBE names. Default 200.
	StreamsPerRequest int
	// Rotate is when a connection is replaced by a fresh one ahead of the exchange's 24-hour
	// cutoff: the new one subscribes first, the old one closes once the new one delivers, so
	// books see no gap. Default 23 h 30 m.
	Rotate time.Duration
	// QuietTimeout: a connection that has delivered nothing for this long is replaced. Default
	// 30 s.
	QuietTimeout time.Duration
	// ReadBurstWait: after a read that drained a connection's socket, it waits this long before
	// the next, so one read (and one wake-up) takes a burst of messages instead of one: at most
	// this much more latency for a fraction of the CPU. Default 2 ms; negative: no wait.
	ReadBurstWait time.Duration
	// MinBackoff and MaxBackoff bound the reconnect backoff. Defaults 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connects, disconnects and rotations. Default: discard.
	Logger *slog.Logger
	// Now is the clock rotation and quiet time are read from. Default time.Now.
	Now func() time.Time
}

// streamEndpoint is a stream endpoint's scheme and host without a trailing slash
// (DefaultStreamURL when raw is empty); what names the setting in the error.
func streamEndpoint(raw, what string) (string, error) {
	if raw == "" {
		return DefaultStreamURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return raw, fmt.Errorf("exchange: %s %q: want ws[s]://host[:port]", what, raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

func (c FeedConfig) withDefaults() (FeedConfig, error) {
	var err error
	if c.URL, err = streamEndpoint(c.URL, "stream URL"); err != nil {
		return c, err
	}
	if c.StreamsPerConnection <= 0 || c.StreamsPerConnection > MaxStreamsPerConnection {
		c.StreamsPerConnection = MaxStreamsPerConnection
	}
	if c.SendPerSecond <= 0 || c.SendPerSecond >= MaxIncomingPerSecond {
		c.SendPerSecond = MaxIncomingPerSecond - 1
	}
	if c.StreamsPerRequest <= 0 {
		c.StreamsPerRequest = 200
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Rotate, ConnectionMaxAge-30*time.Minute)
	def(&c.QuietTimeout, 30*time.Second)
	if c.ReadBurstWait == 0 {
		c.ReadBurstWait = 2 * time.Millisecond
	}
	def(&c.MinBackoff, 250*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// newAttemptLimiter paces connection attempts under the exchange's per-IP limit.
func newAttemptLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(ConnectionAttempts)/ConnectionAttemptWindow.Seconds()), 10)
}

// reconnectBackoff is the pause before reconnect attempt n (0 after a connection that
// delivered): exponential from lo, capped at hi, the upper half drawn at random.
func reconnectBackoff(lo, hi time.Duration, attempt int) time.Duration {
	d := min(hi, lo<<min(attempt, 16))
	return d/2 + rand.N(d/2+1)
}

// FeedHandler receives every stream message: the stream's name, its payload (the combined
// stream's "data"; valid only during the call) and when it was received. Calls for one
// connection are sequential; different connections call concurrently.
type FeedHandler interface {
	StreamMessage(stream string, data []byte, received time.Time)
	// StreamDown says a stream's connection ended: its next messages may not follow on.
	StreamDown(stream string, err error)
}

// FeedStats counts what a Feed did.
type FeedStats struct {
	Connections  int   // open now
	Streams      int   // streams wanted
	Connects     int64 // connections established
	Disconnects  int64 // connections lost (not rotations)
	Rotations    int64 // connections replaced ahead of the cutoff
	Messages     int64 // stream messages received
	Subscribes   int64 // SUBSCRIBE requests sent
	BadMessages  int64 // messages that could not be read
	DialFailures int64
}

// Feed holds the websocket connections of a set of market streams, within the exchange's rules:
// streams are spread over connections of at most StreamsPerConnection, subscribes are paced
// under the per-connection message limit, connection attempts under the per-IP limit, lost
// connections come back with backoff, and each connection is replaced before the 24-hour cutoff.
type Feed struct {
	cfg      FeedConfig
	h        FeedHandler
	attempts *rate.Limiter
	dial     *websocket.DialOptions

	mu       sync.Mutex
	want     map[string]*feedConn // stream → the connection that holds it (nil: unassigned)
	conns    map[*feedConn]struct{}
	changed  chan struct{}
	stats    FeedStats
	messages atomic.Int64 // FeedStats.Messages, counted without the lock
}

// NewFeed builds a Feed; Run holds its connections.
func NewFeed(cfg FeedConfig, h FeedHandler) (*Feed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("exchange: feed handler is required")
	}
	return &Feed{cfg: cfg, h: h, dial: &websocket.DialOptions{HTTPClient: streamHTTPClient(cfg.ReadBurstWait)},
		attempts: newAttemptLimiter(),
		want:     map[string]*feedConn{}, conns: map[*feedConn]struct{}{}, changed: make(chan struct{}, 1)}, nil
}

// SetStreams makes the feed hold exactly these streams (lower-case names such as
// "btcusdt@depth@100ms"): new ones are subscribed, dropped ones unsubscribed.
func (f *Feed) SetStreams(streams []string) {
	f.mu.Lock()
	keep := make(map[string]bool, len(streams))
	for _, s := range streams {
		keep[s] = true
		if _, ok := f.want[s]; !ok {
			f.want[s] = nil
		}
	}
	for s, c := range f.want {
		if !keep[s] {
			delete(f.want, s)
			if c != nil {
				c.drop(s)
			}
		}
	}
	f.mu.Unlock()
	f.poke()
}

func (f *Feed) poke() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (f *Feed) Stats() FeedStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stats
	st.Messages = f.messages.Load()
	st.Connections = len(f.conns)
	st.Streams = len(f.want)
	return st
}

// Run holds the connections until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		f.assign(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-f.changed:
		case <-t.C:
		}
	}
}

// assign gives unassigned streams to connections with room, opening connections as needed, and
// starts rotations that are due.
func (f *Feed) assign(ctx context.Context, wg *sync.WaitGroup) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var free []string
	for s, c := range f.want {
		if c == nil {
			free = append(free, s)
		}
	}
	sort.Strings(free)
	for len(free) > 0 {
		var target *feedConn
		for c := range f.conns {
			if !c.retiring && c.count() < f.cfg.StreamsPerConnection {
				target = c
				break
			}
		}
		if target == nil {
			target = f.newConn()
			wg.Add(1)
			go func() { defer wg.Done(); target.run(ctx) }()
		}
		n := min(len(free), f.cfg.StreamsPerConnection-target.count())
		for _, s := range free[:n] {
			f.want[s] = target
		}
		target.add(free[:n])
		free = free[n:]
	}
	now := f.cfg.Now()
	for c := range f.conns {
		if c.retiring || c.successor != nil || c.since.IsZero() || now.Sub(c.since) < f.cfg.Rotate {
			continue
		}
		// Rotation: a successor takes the same streams; this one closes once it delivers.
		next := f.newConn()
		next.predecessor = c
		c.successor = next
		next.add(c.streams())
		f.stats.Rotations++
		f.cfg.Logger.Info("stream connection rotating ahead of the 24-hour cutoff", "streams", next.count(), "age", now.Sub(c.since).Round(time.Second).String())
		wg.Add(1)
		go func() { defer wg.Done(); next.run(ctx) }()
	}
}

func (f *Feed) newConn() *feedConn {
	c := &feedConn{f: f, subs: map[string]bool{}, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
	f.conns[c] = struct{}{}
	return c
}

// feedConn is one websocket connection and the streams it holds.
type feedConn struct {
	f           *Feed
	kick        chan struct{}
	predecessor *feedConn // rotation: closed once this one delivers
	successor   *feedConn
	retiring    bool
	since       time.Time // when the current connection opened (zero: not open)

	mu      sync.Mutex
	subs    map[string]bool // streams it should hold
	pending map[string]bool // to subscribe on the current connection
	unsub   []string
	id      int64
}

func (c *feedConn) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.subs) }

func (c *feedConn) streams() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.subs))
	for s := range c.subs {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (c *feedConn) add(streams []string) {
	c.mu.Lock()
	for _, s := range streams {
		c.subs[s] = true
		c.pending[s] = true
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *feedConn) drop(s string) {
	c.mu.Lock()
	delete(c.subs, s)
	if !c.pending[s] {
		c.unsub = append(c.unsub, s)
	}
	delete(c.pending, s)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run keeps this connection up until ctx ends, the feed drops all its streams, or a successor
// replaces it.
func (c *feedConn) run(ctx context.Context) {
	f := c.f
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		for s, owner := range f.want {
			if owner == c {
				if c.successor != nil {
					f.want[s] = c.successor
				} else {
					f.want[s] = nil
				}
			}
		}
		f.mu.Unlock()
		f.poke()
	}()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if c.count() == 0 {
			return
		}
		if err := f.attempts.Wait(ctx); err != nil {
			return
		}
		delivered, err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		f.mu.Lock()
		retiring := c.retiring
		f.mu.Unlock()
		if retiring {
			return
		}
		for _, s := range c.streams() {
			f.h.StreamDown(s, err)
		}
		f.mu.Lock()
		f.stats.Disconnects++
		f.mu.Unlock()
		if delivered {
			attempt = 0
		}
		d := reconnectBackoff(f.cfg.MinBackoff, f.cfg.MaxBackoff, attempt)
		f.cfg.Logger.Warn("stream connection lost; reconnecting", "err", err, "streams", c.count(), "backoff", d.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// combinedMessage is a combined stream's payload.
type combinedMessage struct {
	Stream string          `json:"stream"`
	Data   json.RawMessage `json:"data"`
	Result json.RawMessage `json:"result"`
	ID     json.RawMessage `json:"id"`
	Error  *struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"error"`
}

// session is one connection's life: dial, subscribe, read until it fails. delivered says
// whether any stream message arrived.
func (c *feedConn) session(ctx context.Context) (delivered bool, err error) {
	f := c.f
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, _, err := websocket.Dial(dctx, f.cfg.URL+"/stream", f.dial)
	cancel()
	if err != nil {
		f.mu.Lock()
		f.stats.DialFailures++
		f.mu.Unlock()
		return false, fmt.Errorf("dial %s: %w", f.cfg.URL, err)
	}
	ws.SetReadLimit(16 << 20)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	defer ws.CloseNow()
	c.mu.Lock()
	for s := range c.subs {
		c.pending[s] = true
	}
	c.unsub = nil
	c.mu.Unlock()
	f.mu.Lock()
	c.since = f.cfg.Now()
	f.stats.Connects++
	f.mu.Unlock()
	f.cfg.Logger.Info("stream connection open", "url", f.cfg.URL, "streams", c.count())

	var got atomic.Bool
	defer func() { delivered = got.Load() }()
	var lastMsg atomic.Int64 // UnixNano of the last message's arrival
	lastMsg.Store(f.cfg.Now().UnixNano())
	errc := make(chan error, 2)
	go func() { errc <- c.sendLoop(sctx, ws) }()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			quiet := f.cfg.Now().Sub(time.Unix(0, lastMsg.Load()))
			f.mu.Lock()
			retire := c.retiring
			f.mu.Unlock()
			switch {
			case retire:
				errc <- errRetired
				return
			case quiet > f.cfg.QuietTimeout:
				errc <- fmt.Errorf("no message for %s", quiet.Round(time.Second))
				return
			}
		}
	}()
	go func() { errc <- c.readLoop(sctx, ws, &got, &lastMsg) }()
	err = <-errc
	if errors.Is(err, errRetired) {
		_ = ws.Close(websocket.StatusNormalClosure, "rotated")
	}
	return delivered, err
}

var errRetired = errors.New("replaced by a fresh connection")

// maxKeptReadBuffer: a read buffer grown past this by a large message is not kept for the next.
const maxKeptReadBuffer = 1 << 20

// readLoop hands each stream message to the feed's handler until the connection fails. Messages
// are read into one buffer, reused (handlers get data valid only during the call), and stream
// names are interned, so a message allocates nothing here.
func (c *feedConn) readLoop(ctx context.Context, ws *websocket.Conn, got *atomic.Bool, lastMsg *atomic.Int64) error {
	f := c.f
	// One close when ctx ends, rather than a read bound to ctx, which registers and drops a
	// context.AfterFunc for every message.
	defer context.AfterFunc(ctx, func() { _ = ws.CloseNow() })()
	rctx := context.WithoutCancel(ctx)
	var buf bytes.Buffer
	names := map[string]string{}
	for {
		_, r, err := ws.Reader(rctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if buf.Cap() > maxKeptReadBuffer {
			buf = bytes.Buffer{}
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		now := f.cfg.Now()
		lastMsg.Store(now.UnixNano())
		name, payload, err := unwrapCombined(buf.Bytes())
		if err != nil {
			f.mu.Lock()
			f.stats.BadMessages++
			f.mu.Unlock()
			f.cfg.Logger.Warn("stream message refused or unreadable", "err", err)
			continue
		}
		if len(name) == 0 {
			continue // a request's answer
		}
		stream, ok := names[string(name)]
		if !ok {
			if len(names) >= 4*MaxStreamsPerConnection {
				clear(names) // names the connection does not hold: do not keep them all
			}
			stream = string(name)
			names[stream] = stream
		}
		if !got.Load() && !got.Swap(true) {
			c.promoted()
		}
		f.messages.Add(1)
		f.h.StreamMessage(stream, payload, now)
	}
}

// promoted retires the predecessor once this (rotating) connection delivers.
func (c *feedConn) promoted() {
	f := c.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := c.predecessor; p != nil {
		p.retiring = true
		c.predecessor = nil
		for s, owner := range f.want {
			if owner == p {
				f.want[s] = c
			}
		}
	}
}

// sendLoop sends the pending SUBSCRIBE and UNSUBSCRIBE requests, paced under the exchange's
// per-connection message limit.
func (c *feedConn) sendLoop(ctx context.Context, ws *websocket.Conn) error {
	f := c.f
	lim := rate.NewLimiter(rate.Limit(f.cfg.SendPerSecond), 1)
	var id int64
	for {
		c.mu.Lock()
		var method string
		var batch []string
		switch {
		case len(c.unsub) > 0:
			method = "UNSUBSCRIBE"
			n := min(len(c.unsub), f.cfg.StreamsPerRequest)
			batch, c.unsub = c.unsub[:n:n], c.unsub[n:]
		case len(c.pending) > 0:
			method = "SUBSCRIBE"
			for s := range c.pending {
				batch = append(batch, s)
				if len(batch) == f.cfg.StreamsPerRequest {
					break
				}
			}
			for _, s := range batch {
				delete(c.pending, s)
			}
		}
		c.mu.Unlock()
		if method == "" {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.kick:
				continue
			}
		}
		if err := lim.Wait(ctx); err != nil {
			return err
		}
		id++
		sort.Strings(batch)
		b, _ := json.Marshal(struct {
			Method string   `json:"method"`
			Params []string `json:"params"`
			ID     int64    `json:"id"`
		}{method, batch, id})
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := ws.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(method), err)
		}
		if method == "SUBSCRIBE" {
			f.mu.Lock()
			f.stats.Subscribes++
			f.mu.Unlock()
		}
	}
}
