package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
)

// runNATSKeys is `cpctl nats-keys DIR`: one nkey seed per identity (kept when present), the
// permissions and the users file a nats-server includes (deploy/nats/nats.conf).
func runNATSKeys(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("nats-keys", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cpctl nats-keys [--containers] DIR\n\n"+
			"Writes DIR/<identity>.nk (an nkey seed, mode 0600, kept if present) for orchestrator, straux,\n"+
			"cinimport, seeder and operator, DIR/permissions.conf and DIR/users.conf (public keys only).\n"+
			"Give each process its seed as NATS_NKEY_SEED_FILE; mount users.conf and permissions.conf\n"+
			"beside deploy/nats/nats.conf. Delete a seed and run again to rotate it (docs/security.md).")
		fmt.Fprintln(fs.Output())
		fs.PrintDefaults()
	}
	containers := fs.Bool("containers", false, "seed files mode 0644 (the directory stays 0700): compose bind-mounts them into containers that run as another user")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	mode := os.FileMode(0o600)
	if *containers {
		mode = 0o644
	}
	keys, err := natsauth.WriteKeysMode(fs.Arg(0), events.NewTopology(events.TopologyConfig{}), mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpctl nats-keys:", err)
		return 1
	}
	for _, id := range natsauth.Identities() {
		fmt.Printf("%-12s %s  %s\n", id, keys.Public[id], keys.SeedFile(id))
	}
	fmt.Println("users file  ", keys.UsersFile())
	return 0
}
