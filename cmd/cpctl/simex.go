package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/simex"
)

// runSimex runs the simulated exchange until ctx is cancelled:
//
//	cpctl simex --listen 127.0.0.1:8090 [--symbols BTCUSDT,...] [--seed N]
//	            [--api-key K --api-secret S] [--weight-limit N] [--weight-window D]
//	            [--latency D --error-rate F --malformed-rate F]
//	            [--rate-limit-rate F --ban-rate F --ban-duration D]
//	            [--firewall-rate F --gateway-error-rate F --max-in-flight N]
//	            [--status SYMBOL=STATUS,...]
func runSimex(ctx context.Context, args []string) int {
	return simexMain(ctx, args, os.Stdout, os.Stderr)
}

func simexMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen      = fs.String("listen", "127.0.0.1:8090", "address to listen on (port 0 picks one)")
		symbols     = fs.String("symbols", strings.Join(simex.DefaultSymbols(), ","), "comma-separated symbols")
		genSymbols  = fs.Int("gen-symbols", 0, "add N synthetic USDT symbols (S0001USDT, …), for benchmarks")
		seed        = fs.Int64("seed", 0, "market seed: the same seed gives the same prices everywhere")
		apiKey      = fs.String("api-key", os.Getenv("SIMEX_API_KEY"), "API key myTrades accepts (env SIMEX_API_KEY)")
		apiSecret   = fs.String("api-secret", os.Getenv("SIMEX_API_SECRET"), "API secret myTrades verifies (env SIMEX_API_SECRET)")
		weightLimit = fs.Int("weight-limit", 6000, "REQUEST_WEIGHT per client per window; 0 lifts the limit")
		weightWin   = fs.Duration("weight-window", time.Minute, "weight-accounting window, whole seconds")
		latency     = fs.Duration("latency", 0, "delay added to every answer")
		errorRate   = fs.Float64("error-rate", 0, "share of requests answered 503 (0..1)")
		malformed   = fs.Float64("malformed-rate", 0, "share of 2xx answers with a cut-off body (0..1)")
		rateLimited = fs.Float64("rate-limit-rate", 0, "share of requests answered 429, Retry-After 1s (0..1)")
		banRate     = fs.Float64("ban-rate", 0, "share of requests answered 418, banning the client (0..1)")
		banDuration = fs.Duration("ban-duration", 2*time.Minute, "a client's first ban; each further one doubles it")
		firewall    = fs.Float64("firewall-rate", 0, "share of requests answered 403 with the CDN firewall's HTML page (0..1)")
		gateway     = fs.Float64("gateway-error-rate", 0, "share of requests answered by the gateway: 502 and 504 HTML pages, 500 -1000 (0..1)")
		maxInFlight = fs.Int("max-in-flight", 512, "concurrent requests answered; more are refused 503 -1008 (overloaded); negative: no limit")
		statuses    = fs.String("status", "", "symbols not TRADING, e.g. ETHBTC=BREAK,XRPUSDT=HALT")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cpctl simex: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg := simex.Config{
		Seed: *seed, APIKey: *apiKey, APISecret: *apiSecret,
		WeightLimit: *weightLimit, WeightWindow: *weightWin,
		BanDuration: *banDuration,
		Faults: simex.Faults{Latency: *latency, ErrorRate: *errorRate, MalformedRate: *malformed,
			RateLimitRate: *rateLimited, BanRate: *banRate, FirewallRate: *firewall, GatewayErrorRate: *gateway},
		MaxInFlight: *maxInFlight,
	}
	for _, kv := range strings.Split(*statuses, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		sym, st, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "cpctl simex: --status %q: want SYMBOL=STATUS\n", kv)
			return 2
		}
		if cfg.Statuses == nil {
			cfg.Statuses = map[string]string{}
		}
		cfg.Statuses[strings.ToUpper(strings.TrimSpace(sym))] = strings.ToUpper(strings.TrimSpace(st))
	}
	if cfg.WeightLimit <= 0 {
		cfg.WeightLimit = -1 // lifted
	}
	for _, s := range strings.Split(*symbols, ",") {
		if s = strings.ToUpper(strings.TrimSpace(s)); s != "" {
			cfg.Symbols = append(cfg.Symbols, s)
		}
	}
	cfg.Symbols = append(cfg.Symbols, simex.GeneratedSymbols(*genSymbols)...)
	ex, err := simex.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cpctl simex: %v\n", err)
		return 2
	}
	srv, err := simex.Listen(*listen, ex)
	if err != nil {
		fmt.Fprintf(stderr, "cpctl simex: %v\n", err)
		return 1
	}
	limit := "lifted"
	if cfg.WeightLimit > 0 {
		limit = fmt.Sprintf("%d per %s", cfg.WeightLimit, *weightWin)
	}
	fmt.Fprintf(stdout, "simex listening on %s (%d symbols, seed %d, weight limit %s, myTrades %s)\n",
		srv.URL(), len(ex.Symbols()), *seed, limit, map[bool]string{true: "on", false: "off"}[cfg.APIKey != ""])
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintf(stderr, "cpctl simex: %v\n", err)
		return 1
	}
	return 0
}
