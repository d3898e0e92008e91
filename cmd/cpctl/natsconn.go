package main

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"cryptopill.dev/jobs/libs/config"
)

// connectNATS connects cpctl to NATS_URL as the operator identity of the environment
// (NATS_CREDS, NATS_NKEY_SEED_FILE or the nats CLI's NATS_NKEY, NATS_USER/NATS_PASSWORD(_FILE),
// NATS_TOKEN(_FILE), NATS_TLS_*), as the services build theirs (config.NATSAuth). lookup nil
// reads the process environment. Errors name the server without credentials.
func connectNATS(lookup func(string) (string, bool), name string) (*nats.Conn, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l := config.NewLoader(lookup)
	url := l.String("NATS_URL", "nats://127.0.0.1:4222")
	auth := l.LoadNATSAuth()
	if err := l.Err(); err != nil {
		return nil, err
	}
	opts, err := auth.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append(opts, nats.Name(name), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s as %s: %w", config.SafeNATSURL(url), auth, err)
	}
	return nc, nil
}
