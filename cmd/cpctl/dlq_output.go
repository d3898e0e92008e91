package main

// Helpers of `cpctl dlq` and `cpctl replay` until the shared output conventions (output.go,
// branch h-status) are merged: the same exit statuses (0 done/healthy, 1 failed/unhealthy, 2
// usage or connection error), a table on stdout, --json for scripts, progress on stderr.

import (
	"flag"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/redeliver"
)

// Exit statuses of dlq and replay (output.go's exitHealthy, exitUnhealthy, exitUsage).
const (
	dlqExitOK       = 0
	dlqExitFailed   = 1
	dlqExitUsageErr = 2
)

// natsFlags registers --nats-url, --timeout and --json.
type natsFlags struct {
	url     string
	timeout time.Duration
	json    bool
}

func (f *natsFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&f.url, "nats-url", "", "NATS server(s) (default $NATS_URL, else nats://127.0.0.1:4222)")
	fs.DurationVar(&f.timeout, "timeout", timeout, "how long one request to a service (one batch of messages) may take")
	fs.BoolVar(&f.json, "json", false, "print one JSON document (for scripts) instead of a table")
}

// connect connects to NATS as the operator and returns a redeliver client on it.
func (f *natsFlags) connect(env cmdEnv, batch int) (*nats.Conn, *redeliver.Client, error) {
	url := strings.TrimSpace(f.url)
	if url == "" {
		if v, ok := env.lookupEnv("NATS_URL"); ok && strings.TrimSpace(v) != "" {
			url = strings.TrimSpace(v)
		} else {
			url = "nats://127.0.0.1:4222"
		}
	}
	nc, err := dialNATS(url, nats.Name("cpctl"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, connErrorf("connect nats %s: %w", config.SafeNATSURL(url), err)
	}
	cl, err := redeliver.New(redeliver.Config{NC: nc, Timeout: f.timeout, Batch: batch,
		Logger: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, cl, nil
}

func newTabWriter(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// parseSince reads a start time: a duration back from now ("1h") or an RFC 3339 time.
func parseTime(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, usageErrorf("-%s %s: want a positive duration (how long ago) or an RFC 3339 time", flagName, v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErrorf("-%s %q: want a duration back from now (1h, 30m) or an RFC 3339 time (2026-12-01T20:00:00Z)", flagName, v)
	}
	return t, nil
}

// shorten cuts s to n runes on one line, for table cells.
func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// parseActionArgs parses flags placed before or after the positional arguments of an action.
func parseActionArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
