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

// natsAuthVars are the variables that name an identity; one of them set in the environment means
// the environment chose it.
var natsAuthVars = []string{"NATS_CREDS", "NATS_NKEY_SEED_FILE", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD",
	"NATS_PASSWORD_FILE", "NATS_TOKEN", "NATS_TOKEN_FILE", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY"}

// operatorNATS is the identity every cpctl command connects to url with: the environment's (see
// connectNATS), else, when the environment names none and url is the dev stack's, the operator
// identity `cpctl dev` wrote into .data/dev.env. Connecting without one to a server that requires
// it fails with the server's authorization error.
func operatorNATS(url string) ([]nats.Option, error) {
	env := processEnv()
	lookup := env.lookupEnv
	chosen := false
	for _, k := range natsAuthVars {
		if v, ok := env.lookupEnv(k); ok && v != "" {
			chosen = true
		}
	}
	if !chosen {
		dev, err := lookupWithDevEnv(cmdEnv{lookupEnv: func(string) (string, bool) { return "", false }})
		if err != nil {
			return nil, err
		}
		if devURL, ok := dev("NATS_URL"); ok && devURL == url {
			lookup = dev
		}
	}
	l := config.NewLoader(lookup)
	auth := l.LoadNATSAuth()
	if err := l.Err(); err != nil {
		return nil, err
	}
	return auth.Options()
}

// dialNATS connects to url as operatorNATS says, with opts after the identity's.
func dialNATS(url string, opts ...nats.Option) (*nats.Conn, error) {
	auth, err := operatorNATS(url)
	if err != nil {
		return nil, err
	}
	// Refused publishes and subscriptions are reported only to this handler: say them.
	report := nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			fmt.Fprintf(os.Stderr, "cpctl: nats: %s: %v\n", sub.Subject, err)
			return
		}
		fmt.Fprintf(os.Stderr, "cpctl: nats: %v\n", err)
	})
	return nats.Connect(url, append(append(auth, report), opts...)...)
}
