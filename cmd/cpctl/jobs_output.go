package main

// Output helpers of `cpctl jobs` and `cpctl freeze`, in the conventions of the shared output.go
// being written on branch h-status (table on a terminal, --json for scripts, exit 0 done, 1
// failed, 2 usage or connection error). They live here until that file is merged; their names are
// distinct so the two can sit side by side, and the lead folds these into it.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
)

// Exit statuses.
const (
	jobsExitOK     = 0 // done
	jobsExitFailed = 1 // the action was refused or failed
	jobsExitUsage  = 2 // bad flags or arguments, or Postgres / NATS could not be reached
)

// jobsConnError is a failure to reach Postgres or NATS: exit 2.
type jobsConnError struct{ err error }

func (e jobsConnError) Error() string { return e.err.Error() }
func (e jobsConnError) Unwrap() error { return e.err }

// jobsStatus prints err for command name and maps it to the exit status.
func jobsStatus(env cmdEnv, name string, err error) int {
	if err == nil {
		return jobsExitOK
	}
	fmt.Fprintf(env.stderr, "cpctl %s: %v\n", name, err)
	var c jobsConnError
	if isUsageError(err) || errors.As(err, &c) {
		return jobsExitUsage
	}
	return jobsExitFailed
}

// jobsJSON writes v as one indented JSON document.
func jobsJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jobsTable is a tab-aligned table with a header row.
type jobsTable struct{ tw *tabwriter.Writer }

func newJobsTable(w io.Writer, headers ...string) *jobsTable {
	t := &jobsTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *jobsTable) row(cells ...string) {
	for i, c := range cells {
		// One line per row, whatever a cell holds (error texts span lines).
		cells[i] = strings.NewReplacer("\n", " ", "\t", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *jobsTable) flush() error { return t.tw.Flush() }

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
