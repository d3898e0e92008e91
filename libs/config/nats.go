package config

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
)

// NATSAuth is how a process proves its identity to NATS and checks the server's: at most one
// of a credentials file, an nkey seed file, a user and password, or a token, plus optional TLS.
// Password and Token are secrets: String and LogValue never show them, and Options puts them
// only into the connection (nats.go never prints them in an error).
type NATSAuth struct {
	// CredsFile is NATS_CREDS: a credentials file (user JWT and nkey seed), operator mode.
	CredsFile string
	// NkeySeedFile is NATS_NKEY_SEED_FILE (or NATS_NKEY, the nats CLI's name): a file holding
	// the user's nkey seed (SU…), for servers that list nkey users in their config.
	NkeySeedFile string
	// User is NATS_USER; Password is NATS_PASSWORD or NATS_PASSWORD_FILE.
	User     string
	Password string
	// Token is NATS_TOKEN or NATS_TOKEN_FILE.
	Token string
	// TLSCA is NATS_TLS_CA, the CA bundle that signed the server's certificate (implies TLS);
	// TLSCert and TLSKey are NATS_TLS_CERT and NATS_TLS_KEY, the client certificate and key for
	// servers that verify clients. A tls:// URL alone uses the system roots.
	TLSCA, TLSCert, TLSKey string
}

// Method names the authentication in use, for logs: creds, nkey, user, token or none.
func (a NATSAuth) Method() string {
	switch {
	case a.CredsFile != "":
		return "creds"
	case a.NkeySeedFile != "":
		return "nkey"
	case a.User != "":
		return "user"
	case a.Token != "":
		return "token"
	}
	return "none"
}

// String describes the identity without its secrets: the method, the user, the files.
func (a NATSAuth) String() string {
	parts := []string{"auth=" + a.Method()}
	switch a.Method() {
	case "creds":
		parts = append(parts, "creds="+a.CredsFile)
	case "nkey":
		parts = append(parts, "nkey_seed_file="+a.NkeySeedFile)
	case "user":
		parts = append(parts, "user="+a.User)
	}
	if a.TLSCA != "" || a.TLSCert != "" {
		parts = append(parts, "tls=on")
	}
	return strings.Join(parts, " ")
}

// GoString keeps %#v from printing the secrets.
func (a NATSAuth) GoString() string { return "config.NATSAuth{" + a.String() + "}" }

// LogValue is what slog prints for a NATSAuth: never a password, token or seed.
func (a NATSAuth) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("method", a.Method())}
	switch a.Method() {
	case "creds":
		attrs = append(attrs, slog.String("creds", a.CredsFile))
	case "nkey":
		attrs = append(attrs, slog.String("nkey_seed_file", a.NkeySeedFile))
	case "user":
		attrs = append(attrs, slog.String("user", a.User))
	}
	attrs = append(attrs, slog.Bool("tls", a.TLSCA != "" || a.TLSCert != ""))
	return slog.GroupValue(attrs...)
}

// LoadNATSAuth reads the NATS identity: NATS_CREDS, NATS_NKEY_SEED_FILE (or NATS_NKEY),
// NATS_USER with NATS_PASSWORD(_FILE), NATS_TOKEN(_FILE), NATS_TLS_CA, NATS_TLS_CERT,
// NATS_TLS_KEY. More than one method, a password without a user, a certificate without its key
// or a file that cannot be read are errors naming the variables (never a secret).
func (l *Loader) LoadNATSAuth() NATSAuth {
	a := NATSAuth{
		CredsFile: l.String("NATS_CREDS", ""),
		User:      l.String("NATS_USER", ""),
		Password:  l.Secret("NATS_PASSWORD"),
		Token:     l.Secret("NATS_TOKEN"),
		TLSCA:     l.String("NATS_TLS_CA", ""),
		TLSCert:   l.String("NATS_TLS_CERT", ""),
		TLSKey:    l.String("NATS_TLS_KEY", ""),
	}
	seed, cliSeed := l.String("NATS_NKEY_SEED_FILE", ""), l.String("NATS_NKEY", "")
	switch {
	case seed != "" && cliSeed != "" && seed != cliSeed:
		l.errs = append(l.errs, fmt.Errorf("both NATS_NKEY_SEED_FILE and NATS_NKEY are set to different files: want one of them"))
	case seed != "":
		a.NkeySeedFile = seed
	default:
		a.NkeySeedFile = cliSeed
	}
	var methods []string
	if a.CredsFile != "" {
		methods = append(methods, "NATS_CREDS")
	}
	if a.NkeySeedFile != "" {
		methods = append(methods, "NATS_NKEY_SEED_FILE")
	}
	if a.User != "" {
		methods = append(methods, "NATS_USER")
	}
	if a.Token != "" {
		methods = append(methods, "NATS_TOKEN")
	}
	if len(methods) > 1 {
		sort.Strings(methods)
		l.errs = append(l.errs, fmt.Errorf("NATS authentication: %s are all set: want only one of them", strings.Join(methods, ", ")))
	}
	if a.Password != "" && a.User == "" {
		l.errs = append(l.errs, fmt.Errorf("NATS_PASSWORD (or NATS_PASSWORD_FILE) is set without NATS_USER: want both"))
	}
	if a.User != "" && a.Password == "" {
		l.errs = append(l.errs, fmt.Errorf("NATS_USER=%q is set without NATS_PASSWORD (or NATS_PASSWORD_FILE): want both", a.User))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		l.errs = append(l.errs, fmt.Errorf("NATS_TLS_CERT and NATS_TLS_KEY: want both or neither"))
	}
	// A missing file is a configuration error now, not a reconnect loop later.
	for _, f := range []struct{ name, path string }{
		{"NATS_CREDS", a.CredsFile}, {"NATS_NKEY_SEED_FILE", a.NkeySeedFile},
		{"NATS_TLS_CA", a.TLSCA}, {"NATS_TLS_CERT", a.TLSCert}, {"NATS_TLS_KEY", a.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			l.errs = append(l.errs, fmt.Errorf("invalid %s=%q: %w", f.name, f.path, err))
		}
	}
	return a
}

// Options are the nats.go options that authenticate as a and set up TLS: the one place every
// service and cpctl turn configuration into a connection's identity.
func (a NATSAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch a.Method() {
	case "creds":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case "nkey":
		o, err := nats.NkeyOptionFromSeed(a.NkeySeedFile)
		if err != nil {
			// nkeys' parse errors say what is wrong with the file, never its content.
			return nil, fmt.Errorf("nats nkey seed file %s: %w", a.NkeySeedFile, err)
		}
		opts = append(opts, o)
	case "user":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case "token":
		opts = append(opts, nats.Token(a.Token))
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}
