package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// UserStreamConfig configures a UserStream; every field's comment says its default.
type UserStreamConfig struct {
	// URL is the stream endpoint's scheme and host (StreamURLFor gives the one of a REST base
	// URL). Default DefaultStreamURL.
	URL string
	// KeepAlive is how often the listenKey is extended (PUT). Default ListenKeyKeepAlive (30 m),
	// half of the key's validity.
	KeepAlive time.Duration
	// Rotate is when a connection is replaced by a fresh one on the same key ahead of the
	// exchange's 24-hour cutoff: the new one opens first, then the old one closes. Default
	// 23 h 30 m.
	Rotate time.Duration
	// PingInterval is how often the client pings; a ping unanswered within PingTimeout ends the
	// connection (a half-dead one delivers nothing and says nothing). Defaults 1 m and 20 s.
	PingInterval, PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect backoff. Defaults 250 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connects, disconnects, key renewals and rotations; never the listenKey.
	// Default: discard.
	Logger *slog.Logger
	// Now is the clock keepalive and rotation times are read from. Default time.Now.
	Now func() time.Time
}

func (c UserStreamConfig) withDefaults() (UserStreamConfig, error) {
	var err error
	if c.URL, err = streamEndpoint(c.URL, "user stream URL"); err != nil {
		return c, err
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.KeepAlive, ListenKeyKeepAlive)
	def(&c.Rotate, ConnectionMaxAge-30*time.Minute)
	def(&c.PingInterval, time.Minute)
	def(&c.PingTimeout, 20*time.Second)
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

// UserStreamHandler receives a UserStream's events. Calls are sequential.
type UserStreamHandler interface {
	// UserStreamConnected says a connection is open. Events from before it may have been
	// missed (the first connection, a reconnect, a new key, a rotation): the user reconciles
	// what happened up to at through REST.
	UserStreamConnected(at time.Time)
	// UserStreamDown says the stream lost its connection (no successor yet); events are being
	// missed until the next UserStreamConnected.
	UserStreamDown(err error)
	// UserTrade receives each trade of an executionReport with execution type TRADE, as
	// myTrades would return it (Raw is the event's JSON).
	UserTrade(ctx context.Context, t Trade)
	// UserStreamGap says an event was lost on an open connection (a message that could not be
	// read, possibly a trade): the user reconciles what happened up to at through REST.
	UserStreamGap(at time.Time)
}

// UserStreamStats counts what a UserStream did.
type UserStreamStats struct {
	Up                bool  // a connection is open now
	Connects          int64 // connections opened (rotations included)
	Disconnects       int64 // connections lost
	Rotations         int64 // connections replaced ahead of the cutoff
	ListenKeys        int64 // listenKeys created
	KeepAlives        int64 // listenKeys extended
	KeepAliveFailures int64
	Expired           int64 // listenKeyExpired events or keepalives answered -1125
	Trades            int64 // TRADE execution reports
	OtherEvents       int64 // events that are not trades (other execution types, balances)
	BadMessages       int64 // messages that could not be read
	DialFailures      int64
}

// ListenKeys are the user data stream's REST calls a UserStream makes; *Client has them.
type ListenKeys interface {
	CreateListenKey(ctx context.Context) (string, error)
	KeepAliveListenKey(ctx context.Context, listenKey string) error
}

// UserStream holds the account's user data stream (<URL>/ws/<listenKey>): it creates the
// listenKey, extends it every KeepAlive, gets a new key and reconnects when the key expires or
// the connection drops (with backoff, connection attempts paced under the exchange's per-IP
// limit), replaces the connection before the 24-hour cutoff, and hands each trade to its
// handler. Every (re)connect is reported, since events may have been missed. The listenKey is
// never logged nor put in an error.
type UserStream struct {
	cfg      UserStreamConfig
	keys     ListenKeys
	h        UserStreamHandler
	attempts *rate.Limiter
	dial     *websocket.DialOptions

	mu    sync.Mutex
	stats UserStreamStats
}

// NewUserStream builds a UserStream; Run holds it.
func NewUserStream(keys ListenKeys, cfg UserStreamConfig, h UserStreamHandler) (*UserStream, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if keys == nil || h == nil {
		return nil, errors.New("exchange: user stream needs its listenKey calls and a handler")
	}
	return &UserStream{cfg: cfg, keys: keys, h: h, attempts: newAttemptLimiter(),
		dial: &websocket.DialOptions{HTTPClient: streamHTTPClient(0)}}, nil
}

// Stats returns the counters.
func (u *UserStream) Stats() UserStreamStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stats
}

func (u *UserStream) count(f func(*UserStreamStats)) {
	u.mu.Lock()
	f(&u.stats)
	u.mu.Unlock()
}

// errKeyExpired ends a session whose key the exchange no longer knows.
var errKeyExpired = errors.New("listenKey expired")

// Run holds the stream until ctx ends; it returns nil then. It never gives up on its own.
func (u *UserStream) Run(ctx context.Context) error {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		delivered, err := u.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		u.count(func(s *UserStreamStats) { s.Up = false })
		if delivered {
			attempt = 0
		}
		d := reconnectBackoff(u.cfg.MinBackoff, u.cfg.MaxBackoff, attempt)
		if errors.Is(err, errKeyExpired) {
			d = 0 // a new key at once: nothing is wrong with the connection
		}
		u.cfg.Logger.Warn("user data stream lost; reconnecting (events may be missed until then)", "err", err, "backoff", d.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
	return nil
}

// userConn is one connection of a session.
type userConn struct {
	ws     *websocket.Conn
	opened time.Time
	cancel context.CancelFunc
}

// userMsg is what a connection said: a message, or its read's (or ping's) failure.
type userMsg struct {
	c    *userConn
	data []byte
	err  error
}

// session is one listenKey's life: create it, connect, keep it alive, rotate connections,
// until the key expires or a connection fails. connected says whether a connection opened.
func (u *UserStream) session(ctx context.Context) (connected bool, err error) {
	key, err := u.keys.CreateListenKey(ctx)
	if err != nil {
		return false, fmt.Errorf("create listenKey: %w", err)
	}
	u.count(func(s *UserStreamStats) { s.ListenKeys++ })
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	msgs := make(chan userMsg, 64)
	cur, err := u.connect(sctx, key, msgs)
	if err != nil {
		return false, err
	}
	defer func() { cur.close() }()
	connected = true
	lastKeepAlive := u.cfg.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	nextPing := u.cfg.Now().Add(u.cfg.PingInterval)
	pings := make(chan userMsg, 1) // ping results, by connection
	for {
		select {
		case <-ctx.Done():
			// The key is not closed: an account has one live key, which other processes of the
			// same account (replicas) hold too; left alone it lapses within the hour.
			return true, ctx.Err()
		case m := <-msgs:
			if m.c != cur {
				continue // a rotated-out connection's last words
			}
			if m.err != nil {
				u.down(m.err)
				return true, m.err
			}
			if err := u.handle(ctx, m.data); err != nil {
				u.down(err)
				return true, err
			}
		case p := <-pings:
			if p.c == cur && p.err != nil {
				err := fmt.Errorf("ping: %w", p.err)
				u.down(err)
				return true, err
			}
		case <-t.C:
			now := u.cfg.Now()
			if now.Sub(lastKeepAlive) >= u.cfg.KeepAlive {
				err := u.keys.KeepAliveListenKey(ctx, key)
				switch {
				case errors.Is(err, ErrListenKeyNotFound):
					u.count(func(s *UserStreamStats) { s.KeepAliveFailures++; s.Expired++ })
					u.down(errKeyExpired)
					return true, errKeyExpired
				case err != nil:
					// The key lives 60 minutes: retry in a minute, well before it lapses.
					u.count(func(s *UserStreamStats) { s.KeepAliveFailures++ })
					u.cfg.Logger.Warn("user data stream keepalive failed; retrying in a minute", "err", err)
					lastKeepAlive = lastKeepAlive.Add(time.Minute)
				default:
					u.count(func(s *UserStreamStats) { s.KeepAlives++ })
					lastKeepAlive = now
				}
			}
			if now.Sub(cur.opened) >= u.cfg.Rotate {
				next, err := u.connect(sctx, key, msgs)
				if err != nil {
					u.cfg.Logger.Warn("user data stream rotation failed; keeping the old connection, retrying in a minute", "err", err)
					cur.opened = cur.opened.Add(time.Minute)
				} else {
					u.count(func(s *UserStreamStats) { s.Rotations++ })
					u.cfg.Logger.Info("user data stream connection rotated ahead of the 24-hour cutoff", "age", now.Sub(cur.opened).Round(time.Second).String())
					old := cur
					cur = next
					old.close()
				}
			}
			if !now.Before(nextPing) {
				nextPing = now.Add(u.cfg.PingInterval)
				c := cur
				go func() {
					pctx, cancel := context.WithTimeout(sctx, u.cfg.PingTimeout)
					defer cancel()
					select {
					case pings <- userMsg{c: c, err: redactErr(c.ws.Ping(pctx), key)}:
					default:
					}
				}()
			}
		}
	}
}

func (c *userConn) close() {
	c.cancel()
	go func() { _ = c.ws.Close(websocket.StatusNormalClosure, "closing") }()
}

func (u *UserStream) down(err error) {
	u.count(func(s *UserStreamStats) { s.Up = false; s.Disconnects++ })
	u.h.UserStreamDown(err)
}

// connect opens a connection on key and starts its reader; the handler hears of it.
func (u *UserStream) connect(ctx context.Context, key string, msgs chan<- userMsg) (*userConn, error) {
	if err := u.attempts.Wait(ctx); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, _, err := websocket.Dial(dctx, u.cfg.URL+"/ws/"+key, u.dial)
	cancel()
	if err != nil {
		u.count(func(s *UserStreamStats) { s.DialFailures++ })
		return nil, fmt.Errorf("dial %s/ws/<listenKey>: %w", u.cfg.URL, redactErr(stripURL(err), key))
	}
	ws.SetReadLimit(1 << 20)
	cctx, ccancel := context.WithCancel(ctx)
	c := &userConn{ws: ws, opened: u.cfg.Now(), cancel: ccancel}
	go func() {
		for {
			_, data, err := ws.Read(cctx)
			if err != nil {
				select {
				case msgs <- userMsg{c: c, err: redactErr(err, key)}:
				case <-cctx.Done():
				}
				return
			}
			select {
			case msgs <- userMsg{c: c, data: data}:
			case <-cctx.Done():
				return
			}
		}
	}()
	u.count(func(s *UserStreamStats) { s.Connects++; s.Up = true })
	u.cfg.Logger.Info("user data stream connected", "url", u.cfg.URL)
	u.h.UserStreamConnected(c.opened)
	return c, nil
}

// handle decodes one event; an expired key ends the session.
func (u *UserStream) handle(ctx context.Context, data []byte) error {
	ev, err := decodeUserEvent(data)
	if err != nil {
		u.count(func(s *UserStreamStats) { s.BadMessages++ })
		u.cfg.Logger.Warn("user data stream message unreadable; asking for a reconciliation", "err", err)
		u.h.UserStreamGap(u.cfg.Now())
		return nil
	}
	switch {
	case ev.expired:
		u.count(func(s *UserStreamStats) { s.Expired++ })
		u.cfg.Logger.Info("user data stream listenKey expired; getting a new one")
		return errKeyExpired
	case ev.trade != nil:
		u.count(func(s *UserStreamStats) { s.Trades++ })
		u.h.UserTrade(ctx, *ev.trade)
	default:
		u.count(func(s *UserStreamStats) { s.OtherEvents++ })
	}
	return nil
}

// redactedError is an error whose message had the listenKey replaced; it still matches what
// it wraps with errors.Is.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, key string) error {
	if err == nil || key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), key, "<listenKey>"), err: err}
}

// userEvent is a decoded user data stream event.
type userEvent struct {
	trade   *Trade
	expired bool
}

// decodeUserEvent reads an executionReport (a Trade when its execution type is TRADE) or a
// listenKeyExpired. Keys are read exactly: Binance's events use keys that differ only in case
// ("x" and "X", "l" and "L", "t" and "T"), which encoding/json would fold.
func decodeUserEvent(data []byte) (userEvent, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return userEvent{}, fmt.Errorf("user event: %w", err)
	}
	var kind string
	if err := json.Unmarshal(m["e"], &kind); err != nil {
		return userEvent{}, fmt.Errorf("user event: field e: %w", err)
	}
	switch kind {
	case "listenKeyExpired":
		return userEvent{expired: true}, nil
	case "executionReport":
	default:
		return userEvent{}, nil
	}
	var x string
	if err := json.Unmarshal(m["x"], &x); err != nil {
		return userEvent{}, fmt.Errorf("executionReport: field x: %w", err)
	}
	if x != "TRADE" {
		return userEvent{}, nil
	}
	var t Trade
	var side string
	var ms int64
	var best *bool
	fields := []struct {
		key string
		dst any
	}{
		{"s", &t.Symbol}, {"t", &t.ID}, {"i", &t.OrderID}, {"g", &t.OrderListID}, {"L", &t.Price},
		{"l", &t.Qty}, {"Y", &t.QuoteQty}, {"n", &t.Commission}, {"T", &ms}, {"S", &side}, {"m", &t.IsMaker},
	}
	for _, f := range fields {
		raw, ok := m[f.key]
		if !ok || string(raw) == "null" {
			return userEvent{}, fmt.Errorf("executionReport: field %s missing", f.key)
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return userEvent{}, fmt.Errorf("executionReport: field %s: %w", f.key, err)
		}
	}
	// N (commission asset) is null on a trade without commission.
	if raw, ok := m["N"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &t.CommissionAsset); err != nil {
			return userEvent{}, fmt.Errorf("executionReport: field N: %w", err)
		}
	}
	// M is documented as "ignore"; Binance sends the trade's best-match flag there.
	t.IsBestMatch = true
	if raw, ok := m["M"]; ok && json.Unmarshal(raw, &best) == nil && best != nil {
		t.IsBestMatch = *best
	}
	switch side {
	case "BUY":
		t.IsBuyer = true
	case "SELL":
	default:
		return userEvent{}, fmt.Errorf("executionReport: side S %q: want BUY or SELL", side)
	}
	if t.Symbol == "" || t.ID < 0 {
		return userEvent{}, fmt.Errorf("executionReport: symbol %q trade id %d: not a trade", t.Symbol, t.ID)
	}
	t.Time = time.UnixMilli(ms).UTC()
	t.Raw = append(json.RawMessage(nil), data...)
	return userEvent{trade: &t}, nil
}
