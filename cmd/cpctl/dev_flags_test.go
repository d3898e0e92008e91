package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

func parseDevFlags(t *testing.T, args ...string) (devFlags, error) {
	t.Helper()
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f devFlags
	f.register(fs)
	f.exchangeURL = "" // not the test process's environment
	require.NoError(t, fs.Parse(args))
	return f, f.validate()
}

func TestDevFlagsFirewallAndGatewayFaults(t *testing.T) {
	t.Parallel()
	f, err := parseDevFlags(t, "-simex-403-rate", "0.01", "-simex-gateway-rate", "0.2")
	require.NoError(t, err)
	args := f.simexArgs("127.0.0.1:0")
	require.Equal(t, []string{"--firewall-rate", "0.01", "--gateway-error-rate", "0.2"}, args[len(args)-4:])
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Equal(t, 0, simexMain(ctx, append(args[1:], "--status", "BTCUSDT=HALT"), io.Discard, io.Discard))
	_, err = parseDevFlags(t, "-simex-403-rate", "2")
	require.ErrorContains(t, err, "simex fault flags")
}

func TestDevFlagsSimexArgs(t *testing.T) {
	t.Parallel()
	f, err := parseDevFlags(t, "-symbols", "500", "-simex-429-rate", "0.05", "-simex-418-rate", "0.001",
		"-simex-error-rate", "0.1", "-simex-latency", "250ms", "-simex-weight-limit", "0", "-simex-ban-duration", "10s")
	require.NoError(t, err)
	require.Equal(t, []string{"simex", "--listen", "127.0.0.1:8090", "--symbols", devSymbols, "--gen-symbols", "495",
		"--api-key", devAPIKey, "--api-secret", devAPISecret, "--weight-limit", "0", "--ban-duration", "10s",
		"--error-rate", "0.1", "--rate-limit-rate", "0.05", "--ban-rate", "0.001", "--latency", "250ms"},
		f.simexArgs("127.0.0.1:8090"))
	// The exchange's own parsing takes every one of them.
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // it parses, listens and returns at once
	args := f.simexArgs("127.0.0.1:0")
	require.Equal(t, 0, simexMain(ctx, args[1:], io.Discard, io.Discard))

	symbols, bases := f.universe()
	require.Len(t, symbols, 500)
	require.Equal(t, []string{"BTCUSDT", "ETHUSDT"}, symbols[:2])
	require.Equal(t, "S0495USDT", symbols[499])
	require.Equal(t, "S0495", bases[499])
	require.Equal(t, []string{"BINANCE_API_KEY=dev-key", "BINANCE_API_SECRET=dev-secret"}, f.credentials())
}

func TestDevFlagsRefuseBadValues(t *testing.T) {
	t.Parallel()
	for args, want := range map[string][]string{
		"-symbols":              {"-symbols", "-1"},
		"faults":                {"-simex-429-rate", "2"},
		"-simex-ban-duration":   {"-simex-ban-duration", "10ms"},
		"-simex-weight-limit -": {"-simex-weight-limit", "-5"},
	} {
		_, err := parseDevFlags(t, want...)
		require.ErrorContains(t, err, args)
	}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	f := devFlags{exchangeURL: "https://api.binance.com", banDuration: time.Minute}
	f.register(fs)
	f.exchangeURL = "https://api.binance.com"
	require.NoError(t, fs.Parse([]string{"-simex-error-rate", "0.5"}))
	require.ErrorContains(t, f.validate(), "BINANCE_BASE_URL=https://api.binance.com replaces the simulated exchange")
	require.Nil(t, f.credentials(), "a real exchange gets the environment's key, never the dev one")

	// A shell that sourced .data/dev.env has the stack's own exchange as BINANCE_BASE_URL.
	f.exchangeURL = "http://127.0.0.1:8090"
	f.ownExchange(8090)
	require.NoError(t, f.validate())
	require.NotNil(t, f.credentials())
}

func TestDevUniverseSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	_, err := db.SeedDev(ctx, d.Pool)
	require.NoError(t, err)
	_, err = d.Pool.Exec(ctx, `INSERT INTO settings.coin_universe (symbol, base_asset, quote_asset) VALUES ('ETHBTC', 'ETH', 'BTC')`)
	require.NoError(t, err)
	enabled := func() (n int) {
		require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM settings.coin_universe WHERE COALESCE(enabled, true)`).Scan(&n))
		return n
	}
	s := &devStack{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct{ symbols, want int }{{500, 501}, {500, 501}, {3, 4}, {7, 8}} {
		s.flags = devFlags{symbols: tc.symbols}
		require.NoError(t, s.applyUniverse(ctx, d.URL))
		require.Equal(t, tc.want, enabled(), "-symbols %d (and ETHBTC, added by hand, untouched)", tc.symbols)
	}
	var first3 int
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT count(*) FROM settings.coin_universe
		WHERE enabled AND symbol IN ('BTCUSDT','ETHUSDT','BNBUSDT','S0001USDT','S0002USDT')`).Scan(&first3))
	require.Equal(t, 5, first3)
}
