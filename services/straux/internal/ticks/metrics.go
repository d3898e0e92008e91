package ticks

import "github.com/prometheus/client_golang/prometheus"

// metrics are the runner's Prometheus series.
type metrics struct {
	ticks        *prometheus.CounterVec
	tickSeconds  prometheus.Histogram
	symbols      *prometheus.CounterVec
	windows      *prometheus.CounterVec
	universe     prometheus.Gauge
	planned      prometheus.Gauge
	coverage     prometheus.Gauge
	sampled      prometheus.Gauge
	sampledCov   prometheus.Gauge
	planKept     prometheus.Gauge
	rounds       prometheus.Gauge
	tickBudget   prometheus.Gauge
	plannedW     prometheus.Gauge
	skipped      prometheus.Counter
	vectorsCPU   prometheus.Counter
	backfilled   prometheus.Counter
	claimsLost   prometheus.Counter
	chunkErrors  prometheus.Counter
	tickerErrors prometheus.Counter
	lastDone     prometheus.Gauge

	samplesBySource  *prometheus.CounterVec
	fallbacks        *prometheus.CounterVec
	fallbackFailures prometheus.Counter
	bookAge          prometheus.Histogram
	sampledSource    *prometheus.GaugeVec
	notTrading       prometheus.Gauge
	statuses         *prometheus.GaugeVec
	statusErrors     prometheus.Counter
	zeroTickers      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_ticks_total",
			Help: "Ticks handled by this replica's durable consumer, by outcome (done, skipped, already_done, unfinished; repaired for a replayed missed period, already_done / already_skipped when it had nothing to repair)."}, []string{"outcome"}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cp_straux_tick_duration_seconds",
			Help: "From receiving a tick to closing its period.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}),
		symbols: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_symbols_total",
			Help: "Symbols this replica finished, by outcome (sampled, failed, abandoned)."}, []string{"outcome"}),
		windows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_windows_total",
			Help: "Window computations, by result (computed, too_few_samples)."}, []string{"result"}),
		universe: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_universe_symbols", Help: "Enabled universe size at the last plan."}),
		planned:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_planned_symbols", Help: "Symbols the last plan samples."}),
		coverage: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_coverage_ratio", Help: "Share of the universe the last plan samples (1: all); what was sampled is cp_straux_sampled_coverage_ratio."}),
		sampled: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_sampled_symbols",
			Help: "Symbols the last closed tick actually sampled (all replicas)."}),
		sampledCov: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_sampled_coverage_ratio",
			Help: "Share of the universe the last closed tick actually sampled (sampled / universe; 1: all)."}),
		planKept: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_plan_kept_ratio",
			Help: "Share of its plan the last closed tick actually sampled (sampled / planned; below 1: the plan was not kept)."}),
		rounds:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_rotation_rounds", Help: "Ticks needed to sample every symbol at the last plan's capacity."}),
		tickBudget: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_tick_budget_weight", Help: "Request weight the last tick could spend on sampling."}),
		plannedW:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_planned_weight", Help: "Request weight the last plan spends."}),
		skipped:    prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_periods_skipped_total", Help: "Late ticks whose periods were marked skipped."}),
		vectorsCPU: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_vectors_cpu_seconds_total", Help: "Thread CPU time spent computing samples, IDHR statistics and vectors."}),
		backfilled: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_backfilled_samples_total", Help: "Samples reconstructed from 1m klines."}),
		claimsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_claims_lost_total", Help: "Symbols whose lease ran out and were taken over before this replica wrote them."}),
		chunkErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_chunk_errors_total",
			Help: "Chunks that failed on the database and were released for another try."}),
		tickerErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_ticker_errors_total", Help: "Ticker batches that failed (samples are written without them)."}),
		lastDone: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_last_done_period_start_timestamp_seconds",
			Help: "Period start of the last tick this replica finished (samples and vectors written), Unix seconds: the freshness of str-aux data."}),
		samplesBySource: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_samples_total",
			Help: "Good samples this replica took, by where the book came from (stream: a local book; rest: a depth call)."}, []string{"source"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_straux_rest_fallbacks_total",
			Help: "Stream mode: symbols sampled over REST because their local book was not live, by its state (syncing, stale, down, not_held; budget_spent: not sampled, the tick's REST budget was spent)."}, []string{"reason"}),
		fallbackFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_rest_fallback_failures_total",
			Help: "Stream mode: REST fallbacks that got no sample either (timeout, rate limit, exchange error): the symbol has none that period."}),
		bookAge: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cp_straux_book_age_seconds",
			Help:    "Stream mode: age of the local books sampled (time since the book's newest event).",
			Buckets: []float64{0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2, 5}}),
		sampledSource: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_straux_sampled_source_symbols",
			Help: "Symbols the last closed tick sampled (all replicas), by source (stream, rest); set by the replica that closed the period."}, []string{"source"}),
		notTrading: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cp_straux_not_trading_symbols",
			Help: "Sampled symbols the exchange last reported not TRADING (BREAK, HALT, …): marked not_trading, not sampled."}),
		statuses: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cp_straux_symbol_status_symbols",
			Help: "Sampled symbols by the trading status the exchange last reported."}, []string{"status"}),
		statusErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_status_refresh_errors_total",
			Help: "Symbol status reads (exchangeInfo) that failed, or named a symbol without a status; the last known statuses are kept."}),
		zeroTickers: prometheus.NewCounter(prometheus.CounterOpts{Name: "cp_straux_zero_price_tickers_total",
			Help: "Tickers dropped because their last price was zero (a symbol without trades)."}),
	}
	if reg != nil {
		reg.MustRegister(m.samplesBySource, m.fallbacks, m.fallbackFailures, m.bookAge, m.sampledSource)
		reg.MustRegister(m.ticks, m.tickSeconds, m.symbols, m.windows, m.universe, m.planned, m.coverage, m.sampled, m.sampledCov, m.planKept, m.rounds,
			m.tickBudget, m.plannedW, m.skipped, m.vectorsCPU, m.backfilled, m.claimsLost, m.chunkErrors, m.tickerErrors, m.lastDone,
			m.notTrading, m.statuses, m.statusErrors, m.zeroTickers)
	}
	// Zero, not absent, before the first tick: alerts on increase() see the first one.
	for _, o := range []string{"done", "skipped", "already_done", "already_skipped", "unfinished"} {
		m.ticks.WithLabelValues(o)
	}
	for _, s := range []string{"stream", "rest"} {
		m.samplesBySource.WithLabelValues(s)
	}
	return m
}
