package main

import (
	"net/url"
	"time"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/exchange"
	"cryptopill.dev/jobs/libs/jobs"
)

// Config is the straux's configuration, read from the environment. Every default holds in every
// environment unless its comment says otherwise.
type Config struct {
	config.Common

	// BinanceBaseURL is the exchange, BINANCE_BASE_URL (the simulated exchange in dev).
	BinanceBaseURL string
	// WeightLimit, BINANCE_WEIGHT_LIMIT, fixes the REQUEST_WEIGHT per minute to plan with; 0
	// reads it from exchangeInfo.rateLimits.
	WeightLimit int

	// MarketData, STRAUX_MARKET_DATA: where samples come from. "stream" (default): local order
	// books kept from the exchange's diff-depth streams, every symbol every tick, REST only for
	// snapshots and as a fallback per symbol; "rest": a depth call per symbol and tick, a
	// universe beyond the weight budget sampled in a rotating slice.
	MarketData string
	// StreamURL, BINANCE_STREAM_URL: the stream endpoint. Default: Binance's for Binance's REST
	// hosts, else BINANCE_BASE_URL's host with ws:// or wss://.
	StreamURL string
	// ResyncPerSecond, STRAUX_RESYNC_PER_SECOND: REST snapshots a second for local books (new
	// subscriptions, gaps, reconnects), 1..100. Default 10 (50 weight a second at depth 100).
	ResyncPerSecond int
	// HandoverLinger, STRAUX_HANDOVER_LINGER: how long a replica keeps the streams of symbols
	// that moved to another replica, so they are sampled from a book while the new owner syncs
	// (a fixed time; 0 drops them at once). Default 2m.
	HandoverLinger time.Duration
	// MemberTTL, STRAUX_MEMBER_TTL: a replica without a heartbeat for this long loses its share
	// of the streams to the others. Default 3s.
	MemberTTL time.Duration

	// DepthLimit, STRAUX_DEPTH_LIMIT: order-book levels per side, 5..100 (weight 5). Default 100.
	DepthLimit int
	// SnapshotsPerTick, STRAUX_SNAPSHOTS_PER_TICK: order books per symbol and tick, 1..5,
	// SnapshotSpacing (STRAUX_SNAPSHOT_SPACING) apart. Defaults 1 and 1s.
	SnapshotsPerTick int
	SnapshotSpacing  time.Duration
	// ChunkSize, STRAUX_CHUNK_SIZE: symbols per claim and per ticker call. Default 20 (the
	// cheapest ticker batch) in REST mode, 500 in stream mode.
	ChunkSize int
	// Workers, STRAUX_WORKERS: chunks worked at once per replica. Default 4.
	Workers int
	// FetchConcurrency, STRAUX_FETCH_CONCURRENCY: exchange calls in flight per replica. Default 32.
	FetchConcurrency int
	// ClaimLease, STRAUX_CLAIM_LEASE: a claim's lease; below the tick consumer's 10s ack wait,
	// so a dead replica's symbols are taken over within it. Default 5s.
	ClaimLease time.Duration
	// WeightSharePct, STRAUX_WEIGHT_SHARE_PCT: the share of the weight budget ticks may spend;
	// the rest is the market jobs'. Default 70.
	WeightSharePct int
	// VectorMaxBins, STRAUX_VECTOR_MAX_BINS: B's cap. Default 256.
	VectorMaxBins int
	// Backfill, STRAUX_BACKFILL: rebuild missing history from 1m klines for symbols whose
	// windows are short of samples (a fresh start; dev has vectors within its first tick).
	// Default on.
	Backfill bool
	// Assist, STRAUX_ASSIST: work ticks whose durable message another replica holds. Default on.
	Assist bool
	// JobWorkers, STRAUX_JOB_WORKERS: market jobs run at once. Default 8.
	JobWorkers int
	// ReplicaID, STRAUX_REPLICA_ID, names this process in claims. Default host/pid/random.
	ReplicaID string
	// JobsRetention, JOBS_RETENTION: how long finished jobs and ops.job_run rows are kept before
	// the job engine prunes them. Default 168h; 0 keeps everything.
	JobsRetention time.Duration

	// Now is the clock of the exchange client, the tick runner and the market jobs; not read
	// from the environment. Default time.Now; tests set the simulated exchange's clock.
	Now func() time.Time
}

// LoadConfig reads the straux's configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	l := config.NewLoader(lookup)
	cfg := Config{
		Common:           l.LoadCommon("127.0.0.1:9102"),
		BinanceBaseURL:   l.String("BINANCE_BASE_URL", exchange.DefaultBaseURL),
		WeightLimit:      l.Int("BINANCE_WEIGHT_LIMIT", 0, 0, 1<<30),
		MarketData:       l.Enum("STRAUX_MARKET_DATA", "stream", "stream", "rest"),
		StreamURL:        l.String("BINANCE_STREAM_URL", ""),
		ResyncPerSecond:  l.Int("STRAUX_RESYNC_PER_SECOND", 10, 1, 100),
		HandoverLinger:   l.Duration("STRAUX_HANDOVER_LINGER", 2*time.Minute),
		MemberTTL:        l.Duration("STRAUX_MEMBER_TTL", 3*time.Second),
		DepthLimit:       l.Int("STRAUX_DEPTH_LIMIT", 100, 5, 100),
		SnapshotsPerTick: l.Int("STRAUX_SNAPSHOTS_PER_TICK", 1, 1, 5),
		SnapshotSpacing:  l.Duration("STRAUX_SNAPSHOT_SPACING", time.Second),
		ChunkSize:        l.Int("STRAUX_CHUNK_SIZE", 0, 0, 1000),
		Workers:          l.Int("STRAUX_WORKERS", 4, 1, 64),
		FetchConcurrency: l.Int("STRAUX_FETCH_CONCURRENCY", 32, 1, 256),
		ClaimLease:       l.Duration("STRAUX_CLAIM_LEASE", 5*time.Second),
		WeightSharePct:   l.Int("STRAUX_WEIGHT_SHARE_PCT", 70, 1, 100),
		VectorMaxBins:    l.Int("STRAUX_VECTOR_MAX_BINS", 256, 12, 4096),
		Backfill:         l.Bool("STRAUX_BACKFILL", true),
		Assist:           l.Bool("STRAUX_ASSIST", true),
		JobWorkers:       l.Int("STRAUX_JOB_WORKERS", 8, 1, 256),
		ReplicaID:        l.String("STRAUX_REPLICA_ID", ""),
		JobsRetention:    l.Duration("JOBS_RETENTION", jobs.DefaultRetention),
	}
	l.Check(cfg.JobsRetention >= 0, "JOBS_RETENTION", cfg.JobsRetention.String(), "a duration of 0 (keep everything) or more, e.g. 168h")
	l.Check(cfg.ClaimLease >= 500*time.Millisecond && cfg.ClaimLease < 10*time.Second,
		"STRAUX_CLAIM_LEASE", cfg.ClaimLease.String(), "a lease from 500ms to under the tick consumer's 10s ack wait")
	if cfg.StreamURL == "" && cfg.MarketData == "stream" {
		u, err := exchange.StreamURLFor(cfg.BinanceBaseURL)
		l.Check(err == nil, "BINANCE_BASE_URL", cfg.BinanceBaseURL, "an http(s) URL (or set BINANCE_STREAM_URL)")
		cfg.StreamURL = u
	} else if cfg.StreamURL != "" {
		u, err := url.Parse(cfg.StreamURL)
		l.Check(err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != "" && (u.Path == "" || u.Path == "/"),
			"BINANCE_STREAM_URL", cfg.StreamURL, "a ws:// or wss:// URL of a host, e.g. wss://stream.binance.com:9443")
	}
	l.Check(cfg.HandoverLinger >= 0, "STRAUX_HANDOVER_LINGER", cfg.HandoverLinger.String(), "a duration of 0 (drop a moved symbol at once) or more")
	l.Check(cfg.MemberTTL >= 500*time.Millisecond && cfg.MemberTTL <= time.Minute, "STRAUX_MEMBER_TTL", cfg.MemberTTL.String(), "a duration from 500ms to 1m")
	return cfg, l.Err()
}
