package simex

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The user data stream, as Binance's spot API serves it: POST /api/v3/userDataStream (API key,
// no signature) gives the account a listenKey valid for 60 minutes (the live one, extended, if it
// has one), PUT extends it by 60 minutes, DELETE closes it; a key unknown or expired answers
// -1125. <stream>/ws/<listenKey> pushes an executionReport (x=TRADE, X=PARTIALLY_FILLED for an
// order's first fill, FILLED for its second) for each of the account's trades as the exchange's
// clock passes its time: the trades myTrades returns, same ids and fields. When the key expires
// the connection gets listenKeyExpired and is closed.

// ListenKeyValidity is how long a listenKey lives after its creation or last keepalive.
const ListenKeyValidity = 60 * time.Minute

// listenKeys are the accounts' user data stream keys.
type listenKeys struct {
	mu      sync.Mutex
	expires map[string]time.Time // key → when it lapses
	byAPI   map[string]string    // API key → its listenKey
	conns   map[*userConn]struct{}
	opened  int64
	events  int64
}

func newListenKeys() *listenKeys {
	return &listenKeys{expires: map[string]time.Time{}, byAPI: map[string]string{}, conns: map[*userConn]struct{}{}}
}

// UserStreamStats counts what the user data stream did.
type UserStreamStats struct {
	ListenKeys  int   // live keys
	Connections int   // open now
	Accepted    int64 // connections accepted
	Events      int64 // executionReports written
}

// UserStreamStats returns the user data stream's counters.
func (e *Exchange) UserStreamStats() UserStreamStats {
	lk := e.listenKeys
	now := e.now()
	lk.mu.Lock()
	defer lk.mu.Unlock()
	st := UserStreamStats{Connections: len(lk.conns), Accepted: lk.opened, Events: lk.events}
	for _, exp := range lk.expires {
		if now.Before(exp) {
			st.ListenKeys++
		}
	}
	return st
}

// DropUserStreams closes every user data stream connection at once (their keys stay valid).
func (e *Exchange) DropUserStreams() {
	lk := e.listenKeys
	lk.mu.Lock()
	conns := make([]*userConn, 0, len(lk.conns))
	for c := range lk.conns {
		conns = append(conns, c)
	}
	lk.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.StatusGoingAway, "dropped")
	}
}

// ExpireListenKeys makes every listenKey lapse now, as if no keepalive had come for an hour.
func (e *Exchange) ExpireListenKeys() {
	lk := e.listenKeys
	now := e.now()
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for k := range lk.expires {
		lk.expires[k] = now
	}
}

// userDataStream answers POST, PUT and DELETE /api/v3/userDataStream.
func (e *Exchange) userDataStream(r *http.Request, q url.Values, now time.Time) (int, []byte) {
	key := r.Header.Get("X-MBX-APIKEY")
	if key == "" {
		return (&apiError{http.StatusUnauthorized, -2014, "API-key format invalid."}).reply()
	}
	if e.cfg.APIKey == "" || !hmac.Equal([]byte(key), []byte(e.cfg.APIKey)) {
		return (&apiError{http.StatusUnauthorized, -2015, "Invalid API-key, IP, or permissions for action."}).reply()
	}
	lk := e.listenKeys
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if r.Method == http.MethodPost {
		lkey, ok := lk.byAPI[key]
		if !ok || !now.Before(lk.expires[lkey]) {
			delete(lk.expires, lkey)
			lkey = newListenKey()
			lk.byAPI[key] = lkey
		}
		lk.expires[lkey] = now.Add(ListenKeyValidity)
		return http.StatusOK, []byte(`{"listenKey":"` + lkey + `"}`)
	}
	lkey := q.Get("listenKey")
	if lkey == "" {
		return mandatory("listenKey").reply()
	}
	exp, ok := lk.expires[lkey]
	if !ok || !now.Before(exp) || lk.byAPI[key] != lkey {
		return badRequest(-1125, "This listenKey does not exist.").reply()
	}
	if r.Method == http.MethodPut {
		lk.expires[lkey] = now.Add(ListenKeyValidity)
		return http.StatusOK, []byte("{}")
	}
	delete(lk.expires, lkey)
	delete(lk.byAPI, key)
	for c := range lk.conns {
		if c.key == lkey {
			go c.close(websocket.StatusNormalClosure, "listenKey closed")
		}
	}
	return http.StatusOK, []byte("{}")
}

const listenKeyChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newListenKey is 60 random letters and digits, as Binance's are.
func newListenKey() string {
	b := make([]byte, 60)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = listenKeyChars[int(b[i])%len(listenKeyChars)]
	}
	return string(b)
}

// isListenKeyPath says whether /ws/<rest> names a listenKey rather than market streams (whose
// names always hold an @).
func isListenKeyPath(rest string) bool {
	return rest != "" && !strings.ContainsAny(rest, "@/")
}

// userConn is one user data stream connection.
type userConn struct {
	ws     *websocket.Conn
	key    string
	cancel context.CancelFunc
	once   sync.Once
}

func (c *userConn) close(code websocket.StatusCode, reason string) {
	// The close handshake first (the client sees the code and reason), then the loops stop.
	c.once.Do(func() {
		go func() {
			_ = c.ws.Close(code, reason)
			c.cancel()
		}()
	})
}

// serveUserStream upgrades /ws/<listenKey> and writes the account's trades as they happen.
func (e *Exchange) serveUserStream(w http.ResponseWriter, r *http.Request, key string) {
	h := e.streams
	now := e.now()
	if !h.admit(clientIP(r), now) {
		e.reply(w, r, http.StatusTooManyRequests, errBody(-1003, "Too many connection attempts; try again later."))
		return
	}
	h.mu.Lock()
	down := h.faults.UserStreamDown
	h.mu.Unlock()
	if down {
		e.reply(w, r, http.StatusServiceUnavailable, errBody(-1001, "Internal error; unable to process your request. Please try again."))
		return
	}
	lk := e.listenKeys
	lk.mu.Lock()
	exp, ok := lk.expires[key]
	lk.mu.Unlock()
	if !ok || !now.Before(exp) {
		e.reply(w, r, http.StatusBadRequest, errBody(-1125, "This listenKey does not exist."))
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OnPingReceived: func(context.Context, []byte) bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			return !h.faults.IgnorePings
		},
	})
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &userConn{ws: ws, key: key, cancel: cancel}
	lk.mu.Lock()
	lk.conns[c] = struct{}{}
	lk.opened++
	lk.mu.Unlock()
	defer func() {
		lk.mu.Lock()
		delete(lk.conns, c)
		lk.mu.Unlock()
		c.close(websocket.StatusNormalClosure, "done")
	}()
	// The client sends nothing but control frames: CloseRead answers its pings and ends ctx
	// when it goes.
	ctx = ws.CloseRead(ctx)
	opened := now
	// The last trade id sent per market: trades from the connection on.
	last := make([]int64, len(e.symbols))
	since := e.cfg.TradesSince.UnixMilli()
	for i, m := range e.symbols {
		last[i] = max(m.lastTradeAt(now.UnixMilli()), m.firstTradeAt(since)-1)
	}
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := e.now()
		h.mu.Lock()
		down := h.faults.UserStreamDown
		h.mu.Unlock()
		if down {
			c.close(websocket.StatusGoingAway, "dropped")
			return
		}
		if now.Sub(opened) >= h.cfg.MaxAge {
			c.close(websocket.StatusGoingAway, "24-hour cutoff")
			return
		}
		lk.mu.Lock()
		exp, ok := lk.expires[key]
		lk.mu.Unlock()
		if !ok || !now.Before(exp) {
			buf = append(buf[:0], `{"e":"listenKeyExpired","E":`...)
			buf = appendInt(buf, now.UnixMilli())
			buf = append(buf, `,"listenKey":"`...)
			buf = append(buf, key...)
			buf = append(buf, `"}`...)
			_ = ws.Write(ctx, websocket.MessageText, buf)
			c.close(websocket.StatusNormalClosure, "listenKey expired")
			return
		}
		var n int64
		for i, m := range e.symbols {
			hi := m.lastTradeAt(now.UnixMilli())
			for k := last[i] + 1; k <= hi; k++ {
				buf = m.appendExecutionReport(buf[:0], k, now.UnixMilli())
				if err := ws.Write(ctx, websocket.MessageText, buf); err != nil {
					e.cfg.Logger.Debug("simex user stream write failed", slog.String("err", err.Error()))
					return
				}
				last[i] = k
				n++
			}
		}
		if n > 0 {
			lk.mu.Lock()
			lk.events += n
			lk.mu.Unlock()
		}
	}
}

// appendExecutionReport appends the executionReport of trade k: the fill of its order (two
// consecutive ids share one, k even the first fill, k odd the second, which fills it).
func (m *market) appendExecutionReport(b []byte, k, eventMs int64) []byte {
	t := m.accountTrade(k)
	first, second := m.accountTrade(k-k%2), m.accountTrade(k-k%2+1)
	status, cumQty, cumQuote := "PARTIALLY_FILLED", t.qty, t.quoteQty
	if k%2 == 1 {
		status, cumQty, cumQuote = "FILLED", first.qty.Add(t.qty), first.quoteQty.Add(t.quoteQty)
	}
	side := "SELL"
	if t.isBuyer {
		side = "BUY"
	}
	b = append(b, `{"e":"executionReport","E":`...)
	b = appendInt(b, eventMs)
	b = append(b, `,"s":"`...)
	b = append(b, m.symbol...)
	b = append(b, `","c":"simex`...)
	b = appendInt(b, t.orderID)
	b = append(b, `","S":"`...)
	b = append(b, side...)
	b = append(b, `","o":"LIMIT","f":"GTC","q":"`...)
	b = appendFixed(b, first.qtyUnits+second.qtyUnits, m.qtyDec)
	b = append(b, `","p":"`...)
	b = appendFixed(b, first.priceTicks, m.priceDec)
	b = append(b, `","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"`...)
	b = append(b, status...)
	b = append(b, `","r":"NONE","i":`...)
	b = appendInt(b, t.orderID)
	b = append(b, `,"l":"`...)
	b = appendFixed(b, t.qtyUnits, m.qtyDec)
	b = append(b, `","z":"`...)
	b = append(b, cumQty.StringFixed(int32(m.qtyDec))...)
	b = append(b, `","L":"`...)
	b = appendFixed(b, t.priceTicks, m.priceDec)
	b = append(b, `","n":"`...)
	b = append(b, t.commission.StringFixed(8)...)
	b = append(b, `","N":"`...)
	b = append(b, t.commissionAsset...)
	b = append(b, `","T":`...)
	b = appendInt(b, t.timeMs)
	b = append(b, `,"t":`...)
	b = appendInt(b, k)
	b = append(b, `,"I":`...)
	b = appendInt(b, 2*k+1)
	b = append(b, `,"w":false,"m":`...)
	b = appendBool(b, t.isMaker)
	b = append(b, `,"M":true,"O":`...)
	b = appendInt(b, first.timeMs)
	b = append(b, `,"Z":"`...)
	b = append(b, cumQuote.StringFixed(8)...)
	b = append(b, `","Y":"`...)
	b = append(b, t.quoteQty.StringFixed(8)...)
	b = append(b, `","Q":"0.00000000","W":`...)
	b = appendInt(b, first.timeMs)
	return append(b, `,"V":"EXPIRE_MAKER"}`...)
}
