// Command cinimport imports a trader's account trades into per-session moves, driven by row
// changes and a periodic sweep; it also syncs the account's trades from the exchange when
// credentials are configured. See README.md and docs/events.md.
//
//	cinimport               run the service
//	cinimport once [-full]  import every OPEN session once, log moves per session, exit 0 or 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/service"
)

func main() {
	cfg, err := LoadConfig(os.LookupEnv)
	if err != nil {
		config.Exit("cinimport", err)
	}
	args := os.Args[1:]
	if len(args) == 0 {
		os.Exit(service.Main(service.Options{Name: events.ServiceCinimport, Common: cfg.Common}, func(ctx context.Context, p *service.Process) error {
			return run(ctx, p, cfg)
		}))
	}
	if args[0] != "once" {
		fmt.Fprintf(os.Stderr, "cinimport: unknown command %q\nusage: cinimport [once [-full]]\n", args[0])
		os.Exit(2)
	}
	fs := flag.NewFlagSet("once", flag.ContinueOnError)
	full := fs.Bool("full", false, "rescan every trade of each session, not only those after its watermark and margin")
	if err := fs.Parse(args[1:]); err != nil {
		os.Exit(2)
	}
	// A one-shot run must not collide with the service's /metrics port, and must not wait for
	// NATS: it publishes its events when NATS is there, and imports either way.
	cfg.HTTPAddr = "127.0.0.1:0"
	os.Exit(service.Main(service.Options{Name: "cinimport-once", Common: cfg.Common, NoNATS: true, NoHTTP: true}, func(ctx context.Context, p *service.Process) error {
		return runOnce(ctx, p, cfg, *full)
	}))
}
