package simex

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Exchange is the simulated exchange, an http.Handler. Serve it with httptest.NewServer in
// tests or with Listen.
type Exchange struct {
	cfg     Config
	now     func() time.Time
	markets map[string]*market
	symbols []*market // in Config order
	weights *weightBook
	streams *streamHub
	// listenKeys are the user data stream's keys and connections.
	listenKeys *listenKeys

	inFlight atomic.Int64 // REST requests being answered

	mu       sync.Mutex
	faults   Faults
	firewall bool
	gateway  int             // gateway errors answered, for their rotation
	halted   map[string]halt // symbols not TRADING
	requests map[string]int64
	statuses map[int]int64
}

// Stats counts what the exchange has seen.
type Stats struct {
	// Requests counts requests by path, including refused ones.
	Requests map[string]int64
	// Statuses counts answers by HTTP status.
	Statuses map[int]int64
}

// New validates cfg and builds the market.
func New(cfg Config) (*Exchange, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Exchange{
		cfg: cfg, now: cfg.Now, faults: cfg.Faults,
		markets:  make(map[string]*market, len(cfg.Symbols)),
		requests: map[string]int64{}, statuses: map[int]int64{}, halted: map[string]halt{},
	}
	e.weights = newWeightBook(cfg)
	e.streams = newStreamHub(cfg.Streams)
	e.listenKeys = newListenKeys()
	walks := map[string]*walk{}
	for _, s := range cfg.Symbols {
		if e.markets[s] != nil {
			return nil, fmt.Errorf("simex: symbol %s listed twice", s)
		}
		m, err := newMarket(uint64(cfg.Seed), s, walks, cfg.TradeEvery)
		if err != nil {
			return nil, fmt.Errorf("simex: %w", err)
		}
		e.markets[s] = m
		e.symbols = append(e.symbols, m)
	}
	nowMs := cfg.Now().UnixMilli()
	for s, st := range cfg.Statuses {
		e.setStatusLocked(s, st, nowMs)
	}
	return e, nil
}

// SetFaults switches the injected faults.
func (e *Exchange) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = f
	return nil
}

// SetWeightLimit changes the REQUEST_WEIGHT limit per window (negative: none).
func (e *Exchange) SetWeightLimit(n int) { e.weights.setLimit(n) }

// ForceRateLimit answers the next request 429 with this Retry-After (whole seconds, rounded
// up), as if its client had spent its weight; requests from that client before it passes count
// towards a ban.
func (e *Exchange) ForceRateLimit(retryAfter time.Duration) {
	e.weights.force(http.StatusTooManyRequests, retryAfter)
}

// ForceBan answers the next request 418 and bans its client for this long.
func (e *Exchange) ForceBan(d time.Duration) { e.weights.force(http.StatusTeapot, d) }

// Stats returns a copy of the counters.
func (e *Exchange) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Requests: make(map[string]int64, len(e.requests)), Statuses: make(map[int]int64, len(e.statuses))}
	for k, v := range e.requests {
		s.Requests[k] = v
	}
	for k, v := range e.statuses {
		s.Statuses[k] = v
	}
	return s
}

// Symbols returns the configured symbols.
func (e *Exchange) Symbols() []string { return slices.Clone(e.cfg.Symbols) }

// endpoint is one path: its weight for a query, its handler and its methods (nil: GET).
type endpoint struct {
	weight  func(q url.Values) int
	handle  func(e *Exchange, r *http.Request, q url.Values, now time.Time) (int, []byte)
	methods []string
}

var endpoints = map[string]endpoint{
	"/api/v3/ping":         {constWeight(1), (*Exchange).ping, nil},
	"/api/v3/time":         {constWeight(1), (*Exchange).serverTime, nil},
	"/api/v3/exchangeInfo": {constWeight(20), (*Exchange).exchangeInfo, nil},
	"/api/v3/klines":       {constWeight(2), (*Exchange).klines, nil},
	"/api/v3/ticker/24hr":  {ticker24hWeight, (*Exchange).ticker24h, nil},
	"/api/v3/ticker/price": {tickerPriceWeight, (*Exchange).tickerPrice, nil},
	"/api/v3/depth":        {depthWeight, (*Exchange).depth, nil},
	"/api/v3/myTrades":     {constWeight(20), (*Exchange).myTrades, nil},
	"/api/v3/userDataStream": {constWeight(2), (*Exchange).userDataStream,
		[]string{http.MethodPost, http.MethodPut, http.MethodDelete}},
}

// ServeHTTP answers one request: overload, the firewall, weight accounting, then faults, then
// the endpoint.
func (e *Exchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/ws/"); ok && isListenKeyPath(rest) {
		e.mu.Lock()
		e.requests["(user stream)"]++
		e.mu.Unlock()
		e.serveUserStream(w, r, rest)
		return
	}
	if path == "/stream" || path == "/ws" || strings.HasPrefix(path, "/ws/") {
		e.mu.Lock()
		e.requests["(stream)"]++
		e.mu.Unlock()
		e.serveStream(w, r)
		return
	}
	n := e.inFlight.Add(1)
	defer e.inFlight.Add(-1)
	ep, ok := endpoints[path]
	if !ok {
		path = "(unknown)"
	}
	e.mu.Lock()
	e.requests[path]++
	faults, firewall := e.faults, e.firewall
	e.mu.Unlock()
	if e.cfg.MaxInFlight > 0 && n > int64(e.cfg.MaxInFlight) {
		e.reply(w, r, http.StatusServiceUnavailable,
			errBody(-1008, "Server is currently overloaded with other requests. Please try again in a few minutes."))
		return
	}
	// The CDN's firewall stands in front of the API: its answers are HTML and carry no weight.
	if firewall || (faults.FirewallRate > 0 && rand.Float64() < faults.FirewallRate) {
		e.replyHTML(w, r, http.StatusForbidden, []byte(firewallPage))
		return
	}
	if !ok {
		e.reply(w, r, http.StatusNotFound, errBody(-1000, "Unknown path "+r.URL.Path+"."))
		return
	}
	if !(ep.methods == nil && r.Method == http.MethodGet) && !slices.Contains(ep.methods, r.Method) {
		e.reply(w, r, http.StatusMethodNotAllowed, errBody(-1000, "Method "+r.Method+" not allowed."))
		return
	}
	q := r.URL.Query()
	inject := 0
	switch {
	case faults.RateLimitRate > 0 && rand.Float64() < faults.RateLimitRate:
		inject = http.StatusTooManyRequests
	case faults.BanRate > 0 && rand.Float64() < faults.BanRate:
		inject = http.StatusTeapot
	}
	adm := e.weights.admit(clientIP(r), ep.weight(q), e.now, inject)
	for name, v := range adm.headers {
		w.Header()[name] = []string{v}
	}
	if adm.status != 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((adm.retryAfter+time.Second-1)/time.Second), 10))
		e.reply(w, r, adm.status, adm.body)
		return
	}
	if faults.Latency > 0 {
		t := time.NewTimer(faults.Latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if faults.ErrorRate > 0 && rand.Float64() < faults.ErrorRate {
		e.reply(w, r, http.StatusServiceUnavailable,
			errBody(-1001, "Internal error; unable to process your request. Please try again."))
		return
	}
	if faults.GatewayErrorRate > 0 && rand.Float64() < faults.GatewayErrorRate {
		e.mu.Lock()
		k := e.gateway % 3
		e.gateway++
		e.mu.Unlock()
		switch k {
		case 0:
			e.replyHTML(w, r, http.StatusBadGateway, gatewayPage(http.StatusBadGateway, "Bad Gateway"))
		case 1:
			e.replyHTML(w, r, http.StatusGatewayTimeout, gatewayPage(http.StatusGatewayTimeout, "Gateway Time-out"))
		default:
			e.reply(w, r, http.StatusInternalServerError,
				errBody(-1000, "An unknown error occurred while processing the request."))
		}
		return
	}
	status, body := ep.handle(e, r, q, e.now())
	if status/100 == 2 && faults.MalformedRate > 0 && rand.Float64() < faults.MalformedRate {
		body = body[:len(body)/2]
	}
	e.reply(w, r, status, body)
}

func (e *Exchange) reply(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	e.send(w, r, status, "application/json;charset=UTF-8", body, string(body))
}

// replyHTML answers with a page from in front of the API (firewall, gateway), logged by status
// only.
func (e *Exchange) replyHTML(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	e.send(w, r, status, "text/html", body, "(html page)")
}

func (e *Exchange) send(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte, logged string) {
	e.mu.Lock()
	e.statuses[status]++
	e.mu.Unlock()
	if status/100 != 2 {
		e.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "simex refused request",
			slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("body", logged))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// clientIP is the remote IP weight is counted against.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Server runs an Exchange on a TCP listener.
type Server struct {
	ln net.Listener
	hs *http.Server
	ex *Exchange
}

// Listen binds addr (e.g. "127.0.0.1:8090"; port 0 picks one) for ex; Serve runs it.
func Listen(addr string, ex *Exchange) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simex: listen %s: %w", addr, err)
	}
	return &Server{ln: ln, ex: ex, hs: &http.Server{Handler: ex, ReadHeaderTimeout: 10 * time.Second}}, nil
}

// URL is the base URL clients use, e.g. "http://127.0.0.1:8090".
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Serve answers requests until ctx is done, then shuts down, letting requests in flight finish
// for up to five seconds.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.hs.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("simex: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Stream connections are hijacked: Shutdown does not see them.
	s.ex.DropStreams()
	s.ex.DropUserStreams()
	if err := s.hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("simex: shutdown: %w", err)
	}
	<-errc
	return nil
}
