package feed

import (
	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/exchange"
)

// collector exports the feed's and the books' counters at scrape time.
type collector struct {
	f *Feed

	books, held, conns, streams                             *prometheus.Desc
	connects, disconnects, rotations, messages, badMessages *prometheus.Desc
	dialFailures, subscribes, resyncs, resyncFailures, gaps *prometheus.Desc
	badEvents, overflows, refreshErrors                     *prometheus.Desc
	tickersLive, tickerEvents, tickerBad, unrouted          *prometheus.Desc
}

func newCollector(f *Feed) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{f: f,
		books:          d("cp_straux_stream_books", "Local order books held, by state (live, syncing, stale, down).", "state"),
		held:           d("cp_straux_stream_held_symbols", "Symbols whose streams this replica holds: owned now, or lingering after moving to another replica.", "share"),
		conns:          d("cp_straux_stream_connections", "Websocket connections open to the exchange's stream endpoint."),
		streams:        d("cp_straux_stream_streams", "Streams the feed holds (subscribed or being subscribed)."),
		connects:       d("cp_straux_stream_connects_total", "Stream connections established."),
		disconnects:    d("cp_straux_stream_disconnects_total", "Stream connections lost (rotations ahead of the 24-hour cutoff excluded)."),
		rotations:      d("cp_straux_stream_rotations_total", "Stream connections replaced ahead of the exchange's 24-hour cutoff."),
		messages:       d("cp_straux_stream_messages_total", "Stream messages received."),
		badMessages:    d("cp_straux_stream_bad_messages_total", "Stream messages that could not be read."),
		dialFailures:   d("cp_straux_stream_dial_failures_total", "Stream connection attempts that failed."),
		subscribes:     d("cp_straux_stream_subscribes_total", "SUBSCRIBE requests sent."),
		resyncs:        d("cp_straux_book_resyncs_total", "REST snapshots applied to local books (new books, gaps, reconnects)."),
		resyncFailures: d("cp_straux_book_resync_failures_total", "REST snapshots that failed or came too old (retried)."),
		gaps:           d("cp_straux_book_gaps_total", "Sequence gaps seen in diff-depth streams (each resyncs its book)."),
		badEvents:      d("cp_straux_book_bad_events_total", "Diff-depth events that could not be read."),
		overflows:      d("cp_straux_book_buffer_overflows_total", "Books whose event buffer overflowed while waiting for a snapshot."),
		refreshErrors:  d("cp_straux_stream_refresh_errors_total", "Failed reads of the universe by the feed (it keeps its streams)."),
		tickersLive:    d("cp_straux_stream_tickers", "24-hour tickers held from ticker streams, by state (live; not_live: none yet, stale or down).", "state"),
		tickerEvents:   d("cp_straux_stream_ticker_events_total", "Ticker stream events kept."),
		tickerBad:      d("cp_straux_stream_ticker_bad_events_total", "Ticker stream events that could not be read."),
		unrouted:       d("cp_straux_stream_unrouted_messages_total", "Stream messages of a stream kind the feed does not handle."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	fs, bs := c.f.Stats()
	owned, lingering := c.f.HeldCounts()
	c.f.mu.Lock()
	refreshErrors := c.f.refreshErrors
	c.f.mu.Unlock()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	n := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	for _, st := range []string{exchange.BookLive, exchange.BookSyncing, exchange.BookStale, exchange.BookDown} {
		g(c.books, float64(bs.ByState[st]), st)
	}
	g(c.held, float64(owned), "owned")
	g(c.held, float64(lingering), "lingering")
	g(c.conns, float64(fs.Connections))
	g(c.streams, float64(fs.Streams))
	n(c.connects, fs.Connects)
	n(c.disconnects, fs.Disconnects)
	n(c.rotations, fs.Rotations)
	n(c.messages, fs.Messages)
	n(c.badMessages, fs.BadMessages)
	n(c.dialFailures, fs.DialFailures)
	n(c.subscribes, fs.Subscribes)
	n(c.resyncs, bs.Resyncs)
	n(c.resyncFailures, bs.ResyncFailures)
	n(c.gaps, bs.Gaps)
	n(c.badEvents, bs.BadEvents)
	n(c.overflows, bs.Overflows)
	n(c.refreshErrors, refreshErrors)
	ts := c.f.tickers.Stats()
	g(c.tickersLive, float64(ts.Live), "live")
	g(c.tickersLive, float64(ts.Symbols-ts.Live), "not_live")
	n(c.tickerEvents, ts.Events)
	n(c.tickerBad, ts.BadEvents)
	n(c.unrouted, c.f.mux.Unrouted())
}
