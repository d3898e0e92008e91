package exchange

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stream kinds: the part of a stream name from its first '@', the keys of NewFeedMux's routes.
const (
	DepthStreamKind  = "@depth@100ms" // DepthStream, Books
	TickerStreamKind = "@ticker"      // TickerStream, Tickers
)

// FeedMux is the FeedHandler of a Feed that carries streams of several kinds: it hands each
// stream's messages and down notices to the handler of the stream's kind. Streams of no route
// are counted and logged once each, not dropped silently.
type FeedMux struct {
	routes   map[string]FeedHandler
	logger   *slog.Logger
	unrouted atomic.Int64

	mu     sync.Mutex
	logged map[string]bool // unrouted streams already logged
}

// NewFeedMux routes by stream kind, e.g. {DepthStreamKind: books, TickerStreamKind: tickers}.
// logger receives the first message of each unrouted stream; nil discards.
func NewFeedMux(routes map[string]FeedHandler, logger *slog.Logger) (*FeedMux, error) {
	if len(routes) == 0 {
		return nil, errors.New("exchange: feed mux: no routes")
	}
	own := make(map[string]FeedHandler, len(routes))
	for kind, h := range routes {
		if !strings.HasPrefix(kind, "@") || len(kind) < 2 {
			return nil, fmt.Errorf("exchange: feed mux: stream kind %q: want the name's part from its '@', e.g. %q", kind, TickerStreamKind)
		}
		if h == nil {
			return nil, fmt.Errorf("exchange: feed mux: stream kind %q: nil handler", kind)
		}
		own[kind] = h
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FeedMux{routes: own, logger: logger, logged: map[string]bool{}}, nil
}

func (m *FeedMux) route(stream string) FeedHandler {
	if i := strings.IndexByte(stream, '@'); i >= 0 {
		if h := m.routes[stream[i:]]; h != nil {
			return h
		}
	}
	m.unrouted.Add(1)
	m.mu.Lock()
	first := !m.logged[stream]
	m.logged[stream] = true
	m.mu.Unlock()
	if first {
		m.logger.Warn("stream of no route (logged once, all counted)", "stream", stream)
	}
	return nil
}

// StreamMessage hands the message to its stream kind's handler (FeedHandler).
func (m *FeedMux) StreamMessage(stream string, data []byte, received time.Time) {
	if h := m.route(stream); h != nil {
		h.StreamMessage(stream, data, received)
	}
}

// StreamDown hands the notice to its stream kind's handler (FeedHandler).
func (m *FeedMux) StreamDown(stream string, err error) {
	if h := m.route(stream); h != nil {
		h.StreamDown(stream, err)
	}
}

// Unrouted is how many messages and down notices had no route.
func (m *FeedMux) Unrouted() int64 { return m.unrouted.Load() }
