// Package marketjobs works straux's kinds of ingest.jobs (DOMAIN.md §1, §3, §5): fetch_klines,
// fetch_ticker, fetch_orderbook, compute_str_vectors, compute_matrices and compute_mea. Every
// handler is idempotent — rows are upserted on their natural keys, keyed by the job's scheduled
// time where they are snapshots — so a job run twice (a lost lease, a retry) rewrites rather than
// duplicates. The grids of compute_matrices and compute_mea are each one set-based statement.
package marketjobs

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
	"cryptopill.dev/jobs/services/straux/internal/store"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

func mustSQL(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("marketjobs: embedded sql/%s.sql: %v", name, err))
	}
	return string(b)
}

var (
	sqlKlineCursor     = mustSQL("kline_cursor")
	sqlUpsertKlines    = mustSQL("upsert_klines")
	sqlSetKlineCursor  = mustSQL("set_kline_cursor")
	sqlUpsertOrderbook = mustSQL("upsert_orderbooks")
	sqlLatestPeriods   = mustSQL("latest_periods")
	sqlMatrices        = mustSQL("matrices")
	sqlMEA             = mustSQL("mea")
)

// Exchange is what the handlers call; *exchange.Client has it.
type Exchange interface {
	Depth(ctx context.Context, symbol string, limit int) (*exchange.OrderBook, error)
	Tickers24h(ctx context.Context, symbols []string) ([]exchange.Ticker24h, error)
	Klines(ctx context.Context, req exchange.KlinesRequest) ([]exchange.Kline, error)
}

// Universe says which symbols are enabled now.
type Universe interface {
	Current(ctx context.Context) ([]string, error)
}

// Config configures the handlers; zero fields take the defaults in their comments.
type Config struct {
	// DepthLimit is fetch_orderbook's depth, 1..5000. Default 100.
	DepthLimit int
	// Streams, in stream mode, serves fetch_orderbook (up to LocalBookDepth levels) and
	// fetch_ticker from the local books and ticker streams this replica holds; the others are
	// fetched over REST. nil: REST only.
	Streams Streams
	// InitialKlines is how many candles back fetch_klines starts for a (symbol, interval)
	// without a cursor. Default 500.
	InitialKlines int
	// MaxPages bounds the klines pages (1000 candles each) one fetch_klines run reads; the
	// next run continues from the cursor. Default 10.
	MaxPages int
	// Quote is the asset that prices coins in matrices and MEA. Default "USDT".
	Quote string
	// MaxBins caps the vectors' bins (see package window). Default 256.
	MaxBins int
	// DefaultInterval is the sampling interval assumed by compute_str_vectors before any tick.
	// Default 40s.
	DefaultInterval time.Duration
	// Tiers are MEA's tier bands on |id_pct| (a decimal fraction), ascending by From; each band
	// runs from its From to the next band's From, and below the first a cell weighs 0. Default
	// DefaultTiers (the original's Alpha–Epsilon).
	Tiers []Tier
	// Mood configures MEA's mood coefficient; zero fields take DefaultMood's.
	Mood Mood
	// Registerer receives the metrics (nil: not registered). Logger defaults to slog.Default(),
	// Now to time.Now.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	Now        func() time.Time
}

func (c Config) withDefaults() Config {
	if c.DepthLimit <= 0 {
		c.DepthLimit = 100
	}
	if c.InitialKlines <= 0 {
		c.InitialKlines = 500
	}
	if c.MaxPages <= 0 {
		c.MaxPages = 10
	}
	if c.Quote == "" {
		c.Quote = "USDT"
	}
	if c.MaxBins <= 0 {
		c.MaxBins = 256
	}
	if c.DefaultInterval <= 0 {
		c.DefaultInterval = 40 * time.Second
	}
	if len(c.Tiers) == 0 {
		c.Tiers = DefaultTiers()
	}
	c.Mood = c.Mood.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Handlers works the market job kinds.
// Streams is what the market jobs read from the stream feed (package feed's Feed).
type Streams interface {
	Book(symbol string, depth int) (ob *exchange.OrderBook, state string, age time.Duration, ok bool)
	Ticker(symbol string) (t exchange.Ticker24h, age time.Duration, ok bool)
}

// LocalBookDepth is how many levels a side the local books keep (their snapshots' depth).
const LocalBookDepth = 100

type Handlers struct {
	cfg Config
	st  *store.Store
	ex  Exchange
	uni Universe
	log *slog.Logger

	gaps       *prometheus.CounterVec
	snapshots  *prometheus.CounterVec
	gapCandles *prometheus.CounterVec
	klines     *prometheus.CounterVec
	mea        meaMetrics
}

// New returns the handlers.
func New(st *store.Store, ex Exchange, uni Universe, cfg Config) *Handlers {
	cfg = cfg.withDefaults()
	h := &Handlers{
		cfg: cfg, st: st, ex: ex, uni: uni, log: cfg.Logger.With("component", "marketjobs"),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_kline_gaps_total",
			Help: "Gaps (missing candles between stored ones) found by fetch_klines, by interval."}, []string{"interval"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_job_snapshots_total",
			Help: "Books and tickers fetch_orderbook and fetch_ticker stored, by where they came from (stream: a local book or ticker stream; rest: a REST call)."}, []string{"kind", "source"}),
		gapCandles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_kline_gap_candles_total",
			Help: "Candles missing in the gaps fetch_klines found, by interval."}, []string{"interval"}),
		klines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_klines_stored_total",
			Help: "Closed candles upserted by fetch_klines, by interval."}, []string{"interval"}),
		mea: newMEAMetrics(),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.gaps, h.snapshots, h.gapCandles, h.klines)
		h.mea.register(cfg.Registerer)
	}
	return h
}

// Register registers a handler for every market kind with e.
func (h *Handlers) Register(e *jobs.Engine) error {
	for kind, fn := range map[jobs.Kind]jobs.HandlerFunc{
		jobs.KindFetchKlines:       h.FetchKlines,
		jobs.KindFetchTicker:       h.FetchTicker,
		jobs.KindFetchOrderbook:    h.FetchOrderbook,
		jobs.KindComputeStrVectors: h.ComputeStrVectors,
		jobs.KindComputeMatrices:   h.ComputeMatrices,
		jobs.KindComputeMEA:        h.ComputeMEA,
	} {
		if err := e.Register(kind, fn); err != nil {
			return err
		}
	}
	return nil
}

// payload is what the seeder puts in a job: {"symbol": "BTCUSDT", "window": "1h"}; a job
// without a symbol covers the whole universe. Keys "SYMBOL/WINDOW" fill what the payload lacks.
type payload struct {
	Symbol   string `json:"symbol"`
	Window   string `json:"window"`
	Interval string `json:"interval"`
	// Balances (coin → balance, decimal strings; absent coins weigh 1) are compute_mea's input.
	Balances map[string]string `json:"balances"`
}

func decode(job jobs.Job) (payload, error) {
	var p payload
	if len(job.Payload) > 0 {
		if err := job.DecodePayload(&p); err != nil {
			return p, jobs.Permanent(err)
		}
	}
	parts := strings.Split(job.Key, "/")
	if p.Symbol == "" && len(parts) >= 1 {
		p.Symbol = parts[0]
	}
	if p.Window == "" {
		p.Window = p.Interval
	}
	if p.Window == "" && len(parts) >= 2 {
		p.Window = parts[1]
	}
	return p, nil
}

// symbols is the payload's symbol, or the whole universe.
func (h *Handlers) symbols(ctx context.Context, p payload) ([]string, error) {
	if p.Symbol != "" {
		return []string{p.Symbol}, nil
	}
	return h.uni.Current(ctx)
}

// snapshotTime is the timestamp of a job's snapshot rows: its scheduled time, so a re-run of the
// same run rewrites them.
func snapshotTime(job jobs.Job, now time.Time) time.Time {
	if job.ScheduledFor.IsZero() {
		return now.UTC().Truncate(time.Second)
	}
	return job.ScheduledFor.UTC().Truncate(time.Millisecond)
}

// permanentIfInvalid makes an exchange's "invalid symbol" or "invalid argument" final: retrying
// cannot fix it.
func permanentIfInvalid(err error) error {
	if errors.Is(err, exchange.ErrInvalidSymbol) || errors.Is(err, exchange.ErrInvalidArgument) {
		return jobs.Permanent(err)
	}
	return err
}
