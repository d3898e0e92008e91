package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
)

// devNATS is the dev stack's NATS security: the shipped per-identity permissions and one nkey
// identity per service and for the operator, generated into <data>/nats-auth on first run and
// kept after (docs/security.md).
type devNATS struct {
	keys natsauth.Keys
}

// newDevNATS writes (or keeps) the identities and returns the server options: the shipped
// permissions and users from the generated configuration, JetStream in <data>/nats, listening
// on loopback only.
func newDevNATS(dataDir string, port int) (*devNATS, *server.Options, error) {
	keys, err := natsauth.WriteKeys(filepath.Join(dataDir, "nats-auth"), events.NewTopology(events.TopologyConfig{}))
	if err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(keys.Dir, "nats.conf")
	body := "# written by `cpctl dev`: JetStream and the users of users.conf (deploy/nats/permissions.conf)\n" +
		"jetstream {}\ninclude \"" + natsauth.UsersFile + "\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", conf, err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		return nil, nil, fmt.Errorf("nats config %s: %w", conf, err)
	}
	opts.ServerName, opts.Host, opts.Port = "cp-dev", "127.0.0.1", port
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", port+4000
	opts.JetStream, opts.StoreDir = true, filepath.Join(dataDir, "nats")
	opts.NoSigs, opts.NoLog = true, true
	return &devNATS{keys: keys}, opts, nil
}

// serviceEnv is service's identity, overriding any NATS identity of cpctl's own environment (a
// sourced dev.env holds the operator's).
func (d *devNATS) serviceEnv(service string) []string {
	return []string{"NATS_NKEY_SEED_FILE=" + d.keys.SeedFile(service), "NATS_NKEY=", "NATS_CREDS=",
		"NATS_USER=", "NATS_PASSWORD=", "NATS_PASSWORD_FILE=", "NATS_TOKEN=", "NATS_TOKEN_FILE="}
}

// operatorEnv is the operator identity for .data/dev.env: NATS_NKEY_SEED_FILE for cpctl and
// NATS_NKEY, the same file, for the nats CLI.
func (d *devNATS) operatorEnv() []string {
	seed := d.keys.SeedFile(natsauth.Operator)
	return []string{"NATS_NKEY_SEED_FILE=" + seed, "NATS_NKEY=" + seed}
}

// operatorOption authenticates cpctl dev's own connection as the operator.
func (d *devNATS) operatorOption() (nats.Option, error) {
	return nats.NkeyOptionFromSeed(d.keys.SeedFile(natsauth.Operator))
}
