package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"text/tabwriter"

	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/progress"
)

// cmdEnv is what a subcommand uses besides its arguments: where it prints and how it reads the
// environment. Tests substitute buffers and a fixed environment.
type cmdEnv struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

func processEnv() cmdEnv {
	return cmdEnv{stdout: os.Stdout, stderr: os.Stderr, lookupEnv: os.LookupEnv}
}

// usageError is a command-line mistake; the command exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u)
}

// databaseFlag registers --database-url on fs; resolve it after parsing.
type databaseFlag struct{ url string }

func (f *databaseFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "database-url", "", "Postgres URL (default $DATABASE_URL, or the file $DATABASE_URL_FILE names)")
}

// resolve returns the flag's value, else DATABASE_URL or the file DATABASE_URL_FILE names, read as
// the services read it, else the dev stack's .data/dev.env (connFlags.database, output.go).
func (f *databaseFlag) resolve(env cmdEnv) (string, error) {
	c := connFlags{dbURL: f.url}
	return c.database(env)
}

// parseWithAction parses flags that may come before or after one positional action
// ("migrate --database-url X up" and "migrate up --database-url X" are the same). Flag syntax errors
// are returned as the flag package reports them, after it has printed them with the usage.
func parseWithAction(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", usageErrorf("missing action (want up or status)")
	}
	action := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		return "", usageErrorf("unexpected arguments %q", fs.Args())
	}
	return action, nil
}

// exitStatus prints err for command name and maps it to the exit status: 2 for usage, 1 otherwise.
func exitStatus(env cmdEnv, name string, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(env.stderr, "cpctl %s: %v\n", name, err)
	if isUsageError(err) {
		return 2
	}
	return 1
}

// flagStatus is the exit status after the flag package reported err: 0 for -h, else 2.
func flagStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func runMigrate(ctx context.Context, args []string) int {
	return migrateCommand(ctx, args, processEnv())
}

func migrateCommand(ctx context.Context, args []string, env cmdEnv) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl migrate up|status [--database-url URL]\n\n"+
			"  up      apply every pending migration\n"+
			"  status  list every migration and whether it is applied\n\n")
		fs.PrintDefaults()
	}
	var dbFlag databaseFlag
	dbFlag.register(fs)
	action, err := parseWithAction(fs, args)
	if err != nil && !isUsageError(err) {
		return flagStatus(err)
	}
	if err == nil && action != "up" && action != "status" {
		err = usageErrorf("unknown action %q (want up or status)", action)
	}
	if err != nil {
		if isUsageError(err) {
			fs.Usage()
		}
		return exitStatus(env, "migrate", err)
	}
	url, err := dbFlag.resolve(env)
	if err != nil {
		return exitStatus(env, "migrate", err)
	}
	if action == "up" {
		return exitStatus(env, "migrate up", migrateUp(ctx, env.stdout, env.stderr, url))
	}
	return exitStatus(env, "migrate status", migrateStatus(ctx, env.stdout, url))
}

func migrateUp(ctx context.Context, out, progressOut io.Writer, url string) error {
	before, err := db.MigrateStatus(ctx, url)
	if err != nil {
		return err
	}
	files := make(map[int64]string, len(before))
	for _, s := range before {
		files[s.Version] = path.Base(s.Source)
	}
	fmt.Fprintf(out, "database %s\n", db.SafeURL(url))
	// Progress on stderr (a bar on a terminal, plain lines otherwise); the applied list on out.
	var bar *progress.Bar
	applied, upErr := db.MigrateUpEach(ctx, url, func(v int64, done, pending int) {
		if bar == nil {
			bar = progress.New(progressOut, "migrations applied", int64(pending))
		}
		bar.Add(1)
	})
	if bar != nil {
		bar.Finish()
	}
	for _, v := range applied {
		fmt.Fprintf(out, "applied %s\n", files[v])
	}
	if upErr != nil {
		return upErr
	}
	var current int64
	for _, s := range before {
		current = max(current, s.Version)
	}
	if len(applied) == 0 {
		fmt.Fprintf(out, "nothing to apply: schema is at version %d\n", current)
		return nil
	}
	fmt.Fprintf(out, "%d applied: schema is at version %d\n", len(applied), current)
	return nil
}

func migrateStatus(ctx context.Context, out io.Writer, url string) error {
	status, err := db.MigrateStatus(ctx, url)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "database %s\n\n", db.SafeURL(url))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAPPLIED\tFILE")
	pending := 0
	for _, s := range status {
		applied := "yes"
		if !s.Applied {
			applied = "no"
			pending++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, applied, path.Base(s.Source))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d migrations: %d applied, %d pending\n", len(status), len(status)-pending, pending)
	return nil
}
