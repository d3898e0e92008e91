// Command cpctl is the operator CLI of the CryptoPill jobs platform: schema migrations, the dev
// stack, the simulated exchange, smoke checks, and (later) status, doctor, freeze and replay.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one cpctl subcommand. run gets the arguments after the subcommand's name and returns
// the process exit status.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) int
}

func commands() map[string]command {
	return map[string]command{
		"migrate":   {"apply or list schema migrations: migrate up|status", runMigrate},
		"seed":      {"load the dev seed (five-coin universe, default windows)", runSeed},
		"simex":     {"run the simulated Binance-compatible exchange", runSimex},
		"dev":       {"run the whole stack on embedded defaults (make dev)", runDev},
		"smoke":     {"check stored statistics, vectors and MEA moods for values stuck at a bound", runSmoke},
		"jobs":      {"list, show, retry, cancel, prune, pause and resume jobs (cpctl jobs help)", runJobs},
		"freeze":    {"stop a module's ticks and its exchange-calling job kinds: freeze [module]", runFreeze},
		"unfreeze":  {"undo a freeze: unfreeze [module]", runUnfreeze},
		"pg-logins": {"create the services' Postgres logins from their URL files (compose's init step)", runPGLogins},
		"dlq":       {"dead letters: dlq list|show|redrive|purge (re-driven to the consumer that wrote them)", runDLQ},
		"replay":    {"re-deliver a range of a stream to one service's handler, durable untouched", runReplay},
		"doctor":    {"check the environment: Postgres, NATS, schema, streams, slot, exchange, clock, weight budget", runDoctor},
		"nats-keys": {"write an nkey identity per service and the operator, and the NATS users file", runNATSKeys},
		"status":    {"the whole system on one screen: replicas, ticks, freshness, relay, streams, jobs, dead letters (--watch)", runStatus},
		"console":   {"serve the status report as a web page (loopback; -actions for retry/cancel/freeze)", runConsole},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(dispatch(ctx, os.Args[1:]))
}

func dispatch(ctx context.Context, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(cmds)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "cpctl: unknown command %q\n\n", args[0])
		usage(cmds)
		return 2
	}
	return c.run(ctx, args[1:])
}

func usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: cpctl <command> [flags]\n\ncommands:")
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, cmds[n].summary)
	}
}
