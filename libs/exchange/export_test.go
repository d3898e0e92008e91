package exchange

import "net/url"

// ForgetLimiter drops the process-wide limiter of baseURL's host, so a test server that gets a
// port an earlier one used starts with a fresh budget.
func ForgetLimiter(baseURL string) {
	if u, err := url.Parse(baseURL); err == nil {
		limiters.Delete(u.Host)
	}
}

// SetBookLive makes a symbol's book live at lastID (benchmarks of the apply path).
func SetBookLive(b *Books, symbol string, lastID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.books[symbol]
	bk.state, bk.lastID = BookLive, lastID
}

// DecodeTickerEvent is the ticker stream's decoder.
func DecodeTickerEvent(data []byte) (Ticker24h, error) { return decodeTickerEvent(data) }
