package main

// Exit statuses and the --nats-url flag of `cpctl jobs` and `cpctl freeze`; tables, JSON and error
// statuses are output.go's.

import (
	"flag"
	"strings"

	"github.com/nats-io/nats.go"
)

// Exit statuses.
const (
	jobsExitOK     = 0 // done
	jobsExitFailed = 1 // the action was refused or failed
	jobsExitUsage  = 2 // bad flags or arguments, or Postgres / NATS could not be reached
)

// natsFlag registers --nats-url; resolve it after parsing.
type natsFlag struct{ url string }

func (f *natsFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "nats-url", "", "NATS server(s) (default $NATS_URL, else nats://127.0.0.1:4222)")
}

func (f *natsFlag) resolve(env cmdEnv) string {
	if u := strings.TrimSpace(f.url); u != "" {
		return u
	}
	if u, ok := env.lookupEnv("NATS_URL"); ok && strings.TrimSpace(u) != "" {
		return strings.TrimSpace(u)
	}
	return nats.DefaultURL
}

// parseInterleaved parses flags that may come before, between or after positional arguments
// ("jobs show 12 --json" and "jobs show --json 12") and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
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
