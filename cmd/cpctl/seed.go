package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"cryptopill.dev/jobs/libs/db"
)

func runSeed(ctx context.Context, args []string) int {
	return seedCommand(ctx, args, processEnv())
}

func seedCommand(ctx context.Context, args []string, env cmdEnv) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl seed [--database-url URL]\n\n"+
			"Loads the dev universe (BTC, ETH, BNB, SOL, ADA against USDT) into settings.coin_universe.\n"+
			"Rows already there are left as they are; the default windows come from the migrations.\n\n")
		fs.PrintDefaults()
	}
	var dbFlag databaseFlag
	dbFlag.register(fs)
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitStatus(env, "seed", usageErrorf("unexpected arguments %q", fs.Args()))
	}
	url, err := dbFlag.resolve(env)
	if err != nil {
		return exitStatus(env, "seed", err)
	}
	return exitStatus(env, "seed", seed(ctx, env.stdout, url))
}

func seed(ctx context.Context, out io.Writer, url string) error {
	pool, err := db.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := db.SeedDev(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "database %s\n", db.SafeURL(url))
	fmt.Fprintf(out, "coin universe: %d inserted%s, %d already present%s\n",
		len(res.Inserted), list(res.Inserted), len(res.Present), list(res.Present))
	fmt.Fprintf(out, "windows: %s\n", strings.Join(res.Windows, ", "))
	return nil
}

// list formats names as " (a, b)", or nothing when there are none.
func list(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}
