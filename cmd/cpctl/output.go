package main

// The output conventions every cpctl command follows (natscli's shape: one place for tables and
// JSON, a monitoring-friendly exit status):
//
//   - a readable table on a terminal (text/tabwriter; colour only when stdout is a terminal),
//     --json for scripts (one JSON document on stdout, nothing else there);
//   - exit status 0 healthy / done, 1 unhealthy / failed, 2 usage or connection error
//     (exitHealthy, exitUnhealthy, exitUsage), so cron and alerting can tell "the system is bad"
//     from "cpctl could not look";
//   - connection settings from flags, else DATABASE_URL / NATS_URL (and their _FILE forms), else
//     the dev stack's .data/dev.env (CP_DEV_ENV names another file), so a fresh shell next to
//     `make dev` needs no `set -a; . .data/dev.env`.
//
// A new command: register outputFlags and connFlags on its FlagSet, gather one report struct,
// render it with newTable / printJSON, and return exitFor(healthy) or connStatus(env, name, err).

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"cryptopill.dev/jobs/libs/config"
)

// Exit statuses shared by every command.
const (
	exitHealthy   = 0 // checked and healthy, or done
	exitUnhealthy = 1 // checked and unhealthy, or the action failed
	exitUsage     = 2 // bad flags or arguments, or Postgres / NATS could not be reached
)

// exitFor is the exit status of a check.
func exitFor(healthy bool) int {
	if healthy {
		return exitHealthy
	}
	return exitUnhealthy
}

// connError is a failure to reach Postgres or NATS: the command could not look, exit 2.
type connError struct{ err error }

func (e connError) Error() string { return e.err.Error() }
func (e connError) Unwrap() error { return e.err }

// connErrorf wraps a connection failure (fmt.Errorf semantics, %w allowed).
func connErrorf(format string, args ...any) error { return connError{err: fmt.Errorf(format, args...)} }

// connStatus prints err for command name and maps it: usage and connection errors 2, others 1.
func connStatus(env cmdEnv, name string, err error) int {
	if err == nil {
		return exitHealthy
	}
	fmt.Fprintf(env.stderr, "cpctl %s: %v\n", name, err)
	var c connError
	if isUsageError(err) || errors.As(err, &c) {
		return exitUsage
	}
	return exitUnhealthy
}

// outputFlags registers --json.
type outputFlags struct{ json bool }

func (o *outputFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.json, "json", false, "print one JSON document (for scripts) instead of a table")
}

// isTerminal reports whether w is a terminal (colour, in-place refresh).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table is a tab-aligned table with a header row.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// One line per row, whatever a cell holds (error texts span lines).
		cells[i] = cellReplacer.Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

var cellReplacer = strings.NewReplacer("\n", " ", "\t", " ")

func (t *table) flush() error { return t.tw.Flush() }

// painter colours health words on a terminal and leaves them plain elsewhere.
type painter struct{ on bool }

func newPainter(w io.Writer) painter {
	return painter{on: isTerminal(w) && os.Getenv("NO_COLOR") == ""}
}

func (p painter) ok(s string) string  { return p.paint("32", s) }
func (p painter) bad(s string) string { return p.paint("31;1", s) }
func (p painter) dim(s string) string { return p.paint("2", s) }

// warnIf is s in yellow when cond holds.
func (p painter) warnIf(cond bool, s string) string {
	if cond {
		return p.paint("33", s)
	}
	return s
}

// health is "ok" in green or the word in red.
func (p painter) health(ok bool, bad string) string {
	if ok {
		return p.ok("ok")
	}
	return p.bad(bad)
}

func (p painter) paint(code, s string) string {
	if !p.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// devEnvFile is where `cpctl dev` writes the stack's settings, relative to the working directory.
const devEnvFile = ".data/dev.env"

// connFlags registers --database-url and --nats-url and resolves them after parsing.
type connFlags struct{ dbURL, natsURL string }

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dbURL, "database-url", "", "Postgres URL (default $DATABASE_URL, $DATABASE_URL_FILE, else "+devEnvFile+")")
	fs.StringVar(&c.natsURL, "nats-url", "", "NATS server(s) (default $NATS_URL, else "+devEnvFile+", else nats://127.0.0.1:4222)")
}

// lookupWithDevEnv is env's lookup, falling back to the KEY=VALUE lines of the dev env file (the
// one CP_DEV_ENV names, else .data/dev.env) for a variable the environment does not set. A missing
// file is not an error: the fallback is only for the dev stack.
func lookupWithDevEnv(env cmdEnv) (func(string) (string, bool), error) {
	path := devEnvFile
	if p, ok := env.lookupEnv("CP_DEV_ENV"); ok && p != "" {
		path = p
	}
	file := map[string]string{}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, usageErrorf("read %s: %v", path, err)
	default:
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, usageErrorf("read %s: line %q is not KEY=VALUE", path, line)
			}
			file[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		if err := sc.Err(); err != nil {
			return nil, usageErrorf("read %s: %v", path, err)
		}
	}
	return func(k string) (string, bool) {
		if v, ok := env.lookupEnv(k); ok {
			return v, true
		}
		v, ok := file[k]
		return v, ok
	}, nil
}

// database returns the Postgres URL: the flag, else DATABASE_URL / DATABASE_URL_FILE, else the dev
// env file. Neither is a usage error naming every source.
func (c *connFlags) database(env cmdEnv) (string, error) {
	if u := strings.TrimSpace(c.dbURL); u != "" {
		return u, nil
	}
	lookup, err := lookupWithDevEnv(env)
	if err != nil {
		return "", err
	}
	u, ok, err := config.LookupSecret(lookup, "DATABASE_URL")
	switch {
	case err != nil:
		return "", usageErrorf("%v", err)
	case !ok:
		return "", usageErrorf("missing DATABASE_URL (or DATABASE_URL_FILE, or %s from `make dev`): set it to a postgres:// URL or pass --database-url", devEnvFile)
	}
	return u, nil
}

// nats returns the NATS server list: the flag, else NATS_URL, else the dev env file, else the
// services' own default.
func (c *connFlags) nats(env cmdEnv) (string, error) {
	if u := strings.TrimSpace(c.natsURL); u != "" {
		return u, nil
	}
	lookup, err := lookupWithDevEnv(env)
	if err != nil {
		return "", err
	}
	if u, ok := lookup("NATS_URL"); ok && strings.TrimSpace(u) != "" {
		return strings.TrimSpace(u), nil
	}
	return "nats://127.0.0.1:4222", nil
}
