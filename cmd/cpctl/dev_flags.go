package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
	"cryptopill.dev/jobs/libs/simex"
)

// devFlags are `cpctl dev`'s knobs for rehearsing scale and exchange trouble locally: a universe of
// many symbols, and an exchange that is slow, failing, rate-limiting or banning, or a real one.
type devFlags struct {
	// symbols is how many symbols the universe enables (0: leave settings.coin_universe as the dev
	// seed and the operator left it). Past the five dev symbols they are synthetic, S0001USDT….
	symbols int
	// The embedded simex's faults and weight limit (cpctl simex's flags of the same meaning).
	faults      simex.Faults
	banDuration time.Duration
	weightLimit int
	// exchangeURL is BINANCE_BASE_URL from the environment: an exchange to use instead of the
	// embedded simex, with the BINANCE_API_KEY/SECRET of the environment (none of the dev ones).
	exchangeURL string
}

//go:embed sql/dev_universe.sql
var devUniverseSQL string

func (f *devFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.symbols, "symbols", 0, "enable this many symbols: the five dev ones, then synthetic S0001USDT… (0: leave the universe as it is)")
	fs.DurationVar(&f.faults.Latency, "simex-latency", 0, "simulated exchange: delay added to every answer")
	fs.Float64Var(&f.faults.ErrorRate, "simex-error-rate", 0, "simulated exchange: share of requests answered 503 (0..1)")
	fs.Float64Var(&f.faults.MalformedRate, "simex-malformed-rate", 0, "simulated exchange: share of 2xx answers with a cut-off body (0..1)")
	fs.Float64Var(&f.faults.RateLimitRate, "simex-429-rate", 0, "simulated exchange: share of requests answered 429 (0..1)")
	fs.Float64Var(&f.faults.BanRate, "simex-418-rate", 0, "simulated exchange: share of requests answered 418, banning the client (0..1)")
	fs.Float64Var(&f.faults.FirewallRate, "simex-403-rate", 0, "simulated exchange: share of requests answered 403 by its firewall, an HTML page (0..1)")
	fs.Float64Var(&f.faults.GatewayErrorRate, "simex-gateway-rate", 0, "simulated exchange: share of requests answered 502/504 (HTML) or 500 by its gateway (0..1)")
	fs.DurationVar(&f.banDuration, "simex-ban-duration", 2*time.Minute, "simulated exchange: a first ban's length; each further one doubles it")
	fs.IntVar(&f.weightLimit, "simex-weight-limit", 6000, "simulated exchange: REQUEST_WEIGHT per minute; 0 lifts the limit")
	f.exchangeURL = os.Getenv("BINANCE_BASE_URL")
}

// ownExchange forgets a BINANCE_BASE_URL that is this stack's own simulated exchange (a shell that
// sourced .data/dev.env): it is no override, and the simulated exchange must still be started.
func (f *devFlags) ownExchange(simexPort int) {
	if strings.TrimRight(f.exchangeURL, "/") == fmt.Sprintf("http://127.0.0.1:%d", simexPort) {
		f.exchangeURL = ""
	}
}

// validate says which flag is wrong, before anything starts.
func (f *devFlags) validate() error {
	if f.symbols < 0 || f.symbols > 9999+len(devSymbolList()) {
		return fmt.Errorf("-symbols %d: want 0..%d", f.symbols, 9999+len(devSymbolList()))
	}
	if f.banDuration < time.Second {
		return fmt.Errorf("-simex-ban-duration %s: want at least 1s", f.banDuration)
	}
	if f.weightLimit < 0 {
		return fmt.Errorf("-simex-weight-limit %d: want 0 (no limit) or more", f.weightLimit)
	}
	if _, err := simex.New(simex.Config{Faults: f.faults}); err != nil {
		return fmt.Errorf("simex fault flags: %w", err)
	}
	if f.exchangeURL != "" && f.faults != (simex.Faults{}) {
		return fmt.Errorf("BINANCE_BASE_URL=%s replaces the simulated exchange: its -simex-* fault flags do not apply", f.exchangeURL)
	}
	return nil
}

func devSymbolList() []string { return strings.Split(devSymbols, ",") }

// universe is the symbols -symbols enables and their base assets.
func (f *devFlags) universe() (symbols, bases []string) {
	dev := devSymbolList()
	for i := range min(f.symbols, len(dev)) {
		symbols = append(symbols, dev[i])
		bases = append(bases, strings.TrimSuffix(dev[i], db.DevQuoteAsset))
	}
	for _, s := range simex.GeneratedSymbols(max(0, f.symbols-len(dev))) {
		symbols = append(symbols, s)
		bases = append(bases, strings.TrimSuffix(s, "USDT"))
	}
	return symbols, bases
}

// simexArgs are the `cpctl simex` arguments for the embedded exchange: every dev symbol and enough
// synthetic ones for -symbols, the dev account, and the faults.
func (f *devFlags) simexArgs(listen string) []string {
	args := []string{"simex", "--listen", listen, "--symbols", devSymbols,
		"--gen-symbols", strconv.Itoa(max(0, f.symbols-len(devSymbolList()))),
		"--api-key", devAPIKey, "--api-secret", devAPISecret,
		"--weight-limit", strconv.Itoa(f.weightLimit), "--ban-duration", f.banDuration.String()}
	fl := f.faults
	for _, r := range []struct {
		flag string
		v    float64
	}{{"--error-rate", fl.ErrorRate}, {"--malformed-rate", fl.MalformedRate},
		{"--rate-limit-rate", fl.RateLimitRate}, {"--ban-rate", fl.BanRate},
		{"--firewall-rate", fl.FirewallRate}, {"--gateway-error-rate", fl.GatewayErrorRate}} {
		if r.v > 0 {
			args = append(args, r.flag, strconv.FormatFloat(r.v, 'g', -1, 64))
		}
	}
	if fl.Latency > 0 {
		args = append(args, "--latency", fl.Latency.String())
	}
	return args
}

// credentials are the exchange credentials the services get: the dev account with the embedded
// simex; with BINANCE_BASE_URL, none here (the services inherit BINANCE_API_KEY/SECRET, if set).
func (f *devFlags) credentials() []string {
	if f.exchangeURL != "" {
		return nil
	}
	return []string{"BINANCE_API_KEY=" + devAPIKey, "BINANCE_API_SECRET=" + devAPISecret}
}

// startExchange starts the embedded simex, or, with BINANCE_BASE_URL, uses that one instead. It
// returns the exchange's base URL.
func (s *devStack) startExchange(ctx context.Context, self string, port int) (string, error) {
	if u := s.flags.exchangeURL; u != "" {
		s.log.Info("BINANCE_BASE_URL is set: using that exchange, not the simulated one", "url", u)
		return u, nil
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	if err := s.start(ctx, "simex", self, s.flags.simexArgs(listen), nil); err != nil {
		return "", err
	}
	if err := pgcluster.WaitReady(listen, 10*time.Second); err != nil {
		return "", fmt.Errorf("simex: %w", err)
	}
	return "http://" + listen, nil
}

// applyUniverse enables the -symbols universe in settings.coin_universe; the orchestrator's
// universe watcher carries the change to the seeder like any other.
func (s *devStack) applyUniverse(ctx context.Context, dbURL string) error {
	if s.flags.symbols == 0 {
		return nil
	}
	symbols, bases := s.flags.universe()
	pool, err := db.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var enabled, disabled int64
	if err := pool.QueryRow(ctx, devUniverseSQL, symbols, bases, devSymbolList()).Scan(&enabled, &disabled); err != nil {
		return fmt.Errorf("dev universe of %d symbols: %w", s.flags.symbols, err)
	}
	s.log.Info("dev universe set", "symbols", len(symbols), "enabled_now", enabled, "disabled_now", disabled)
	return nil
}
