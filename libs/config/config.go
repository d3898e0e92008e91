// Package config reads a service's typed configuration from environment variables. Each service
// declares one Config struct and fills it with a Loader; every bad value is collected and reported
// at once, naming the variable and what it accepts, and the process exits with status 2.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Env is the deployment environment, CP_ENV. It picks default intervals and which loops run.
type Env string

const (
	EnvDev     Env = "dev"
	EnvStaging Env = "staging"
	EnvProd    Env = "prod"
)

// ExitInvalidConfig is the exit status for a configuration error.
const ExitInvalidConfig = 2

// Loader reads variables from a lookup function (os.LookupEnv by default) and collects errors.
type Loader struct {
	lookup func(string) (string, bool)
	errs   []error
	// Env is CP_ENV, read first so that callers can pick profile defaults.
	Env Env
}

// NewLoader reads CP_ENV from lookup (nil: the process environment).
func NewLoader(lookup func(string) (string, bool)) *Loader {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	l := &Loader{lookup: lookup}
	l.Env = Env(l.Enum("CP_ENV", string(EnvDev), string(EnvDev), string(EnvStaging), string(EnvProd)))
	return l
}

// Pick returns the value for the loader's environment.
func Pick[T any](l *Loader, dev, staging, prod T) T {
	switch l.Env {
	case EnvProd:
		return prod
	case EnvStaging:
		return staging
	default:
		return dev
	}
}

// Err returns every problem found, joined, or nil.
func (l *Loader) Err() error { return errors.Join(l.errs...) }

func (l *Loader) fail(name, value, accepts string) {
	l.errs = append(l.errs, fmt.Errorf("invalid %s=%q: want %s", name, value, accepts))
}

func (l *Loader) get(name string) (string, bool) {
	v, ok := l.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return "", false
	}
	return strings.TrimSpace(v), true
}

// String returns the variable or def when unset or empty.
func (l *Loader) String(name, def string) string {
	if v, ok := l.get(name); ok {
		return v
	}
	return def
}

// Secret reads a value that must never be printed, from name or from the file name_FILE names (as
// container platforms mount secrets); see LookupSecret. Errors name the variables and the path,
// never the value.
func (l *Loader) Secret(name string) string {
	v, _, err := LookupSecret(l.lookup, name)
	if err != nil {
		l.errs = append(l.errs, err)
	}
	return v
}

// RequiredSecret is Secret for a value that must be set, in one form or the other.
func (l *Loader) RequiredSecret(name, accepts string) string {
	v, ok, err := LookupSecret(l.lookup, name)
	switch {
	case err != nil:
		l.errs = append(l.errs, err)
	case !ok:
		l.errs = append(l.errs, fmt.Errorf("missing %s (or %s%s): want %s", name, name, FileSuffix, accepts))
	}
	return v
}

// FileSuffix names the variable holding the path of a secret's file: DATABASE_URL_FILE.
const FileSuffix = "_FILE"

// maxSecretFile bounds what a secret file may hold, so a path set to the wrong file (a log, a
// device) is refused rather than read whole; a NATS credentials file is about 1 KiB.
const maxSecretFile = 64 << 10

// LookupSecret returns the secret name from lookup: the variable itself (trimmed like every
// variable), or the content of the file that name_FILE names with one trailing newline removed
// (the one editors and `echo` add; other whitespace may belong to the secret). ok is false when
// neither is set. Setting both, an unreadable, empty or oversized file are errors naming the
// variables and the path; no error ever holds the secret.
func LookupSecret(lookup func(string) (string, bool), name string) (value string, ok bool, err error) {
	fileVar := name + FileSuffix
	get := func(k string) (string, bool) {
		v, ok := lookup(k)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	v, direct := get(name)
	path, fromFile := get(fileVar)
	switch {
	case direct && fromFile:
		return "", false, fmt.Errorf("both %s and %s are set: want one of them", name, fileVar)
	case direct:
		return v, true, nil
	case !fromFile:
		return "", false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		// *fs.PathError: operation, path and cause; nothing read.
		return "", false, fmt.Errorf("invalid %s=%q: %w", fileVar, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", false, fmt.Errorf("invalid %s=%q: %w", fileVar, path, err)
	}
	if len(b) > maxSecretFile {
		return "", false, fmt.Errorf("invalid %s=%q: file larger than %d KiB: want the secret alone", fileVar, path, maxSecretFile>>10)
	}
	s := string(b)
	if t, cut := strings.CutSuffix(s, "\r\n"); cut {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return "", false, fmt.Errorf("invalid %s=%q: file is empty: want the secret %s", fileVar, path, name)
	}
	return s, true, nil
}

// Required returns the variable or records an error when it is unset.
func (l *Loader) Required(name, accepts string) string {
	v, ok := l.get(name)
	if !ok {
		l.errs = append(l.errs, fmt.Errorf("missing %s: want %s", name, accepts))
	}
	return v
}

// Enum returns the variable when it is one of allowed, def when unset.
func (l *Loader) Enum(name, def string, allowed ...string) string {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail(name, v, "one of "+strings.Join(allowed, ", "))
	return def
}

// Bool accepts 1/0, true/false, yes/no, on/off.
func (l *Loader) Bool(name string, def bool) bool {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	l.fail(name, v, "1 or 0 (true/false, yes/no, on/off)")
	return def
}

// Int returns an integer in [min, max].
func (l *Loader) Int(name string, def, min, max int) int {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.fail(name, v, fmt.Sprintf("an integer from %d to %d", min, max))
		return def
	}
	return n
}

// Millis reads a duration given in milliseconds (the seed's *_MS variables), as a positive integer.
func (l *Loader) Millis(name string, def time.Duration) time.Duration {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		l.fail(name, v, "a positive whole number of milliseconds")
		return def
	}
	return time.Duration(n) * time.Millisecond
}

// Duration reads a Go duration ("30s", "5m").
func (l *Loader) Duration(name string, def time.Duration) time.Duration {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, v, `a positive duration such as "30s" or "5m"`)
		return def
	}
	return d
}

// List reads a comma-separated list, trimming blanks.
func (l *Loader) List(name string, def []string) []string {
	v, ok := l.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, part := range strings.Split(v, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Check records an error for name when ok is false; for cross-field rules.
func (l *Loader) Check(ok bool, name, value, accepts string) {
	if !ok {
		l.fail(name, value, accepts)
	}
}

// Exit prints err and exits with ExitInvalidConfig. Mains call it when loading fails.
func Exit(service string, err error) {
	fmt.Fprintf(os.Stderr, "%s: configuration error:\n", service)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(os.Stderr, "  %s\n", line)
	}
	os.Exit(ExitInvalidConfig)
}

// Common holds the settings every service shares.
type Common struct {
	Env            Env
	DatabaseURL    string        // DATABASE_URL or DATABASE_URL_FILE; holds a password: log db.SafeURL
	DBMaxConns     int           // DB_MAX_CONNS, the process's Postgres pool size
	NATSURL        string        // NATS_URL, default nats://127.0.0.1:4222; log SafeNATSURL
	NATS           NATSAuth      // NATS_CREDS, NATS_NKEY_SEED_FILE, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_TLS_*
	NATSReplicas   int           // NATS_REPLICAS, stream replicas: 1 in dev, 3 in staging and prod
	HTTPAddr       string        // HTTP_ADDR for /healthz, /readyz, /metrics
	LogLevel       string        // LOG_LEVEL: debug, info, warn, error
	LogFormat      string        // LOG_FORMAT: json (default), text, auto (text on a terminal); service.NewLogger reads it
	MigrateOnStart bool          // MIGRATE_ON_START
	ShutdownGrace  time.Duration // SHUTDOWN_GRACE, how long in-flight work may take to finish
	// Tracing is what the OTEL_* variables ask of the trace SDK; the SDK reads them itself
	// (endpoints, sampler, resource attributes), this only validates them and keeps the switches.
	Tracing Tracing
}

// Tracing is the trace export the standard OTEL_* variables configure.
type Tracing struct {
	// Disabled is OTEL_SDK_DISABLED=true: no spans are recorded (traceparent still passes through).
	Disabled bool
	// Export is true when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
	// and OTEL_TRACES_EXPORTER is not "none": spans are sent over OTLP/HTTP. Without it they are
	// still created and propagated, so a collector added later sees whole traces.
	Export bool
}

// otelSamplers are the OTEL_TRACES_SAMPLER values the Go SDK knows; any other it ignores
// silently, so a typo here is refused instead.
var otelSamplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// LoadTracing validates the standard OTEL_* variables the trace SDK reads, so a bad value fails
// at start naming the variable rather than being dropped by the SDK.
func (l *Loader) LoadTracing() Tracing {
	var t Tracing
	endpoint := false
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		v, ok := l.get(name)
		if !ok {
			continue
		}
		endpoint = true
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.fail(name, v, "an http:// or https:// URL such as http://collector:4318")
		}
	}
	exporter := l.Enum("OTEL_TRACES_EXPORTER", "otlp", "otlp", "none")
	t.Export = endpoint && exporter == "otlp"
	if v, ok := l.get("OTEL_TRACES_SAMPLER"); ok {
		l.Check(slices.Contains(otelSamplers, v), "OTEL_TRACES_SAMPLER", v, "one of "+strings.Join(otelSamplers, ", "))
		if strings.HasSuffix(v, "traceidratio") {
			if a, ok := l.get("OTEL_TRACES_SAMPLER_ARG"); ok {
				f, err := strconv.ParseFloat(a, 64)
				l.Check(err == nil && f >= 0 && f <= 1, "OTEL_TRACES_SAMPLER_ARG", a, "a ratio from 0 to 1")
			}
		}
	}
	if v, ok := l.get("OTEL_RESOURCE_ATTRIBUTES"); ok {
		for _, pair := range strings.Split(v, ",") {
			k, _, found := strings.Cut(pair, "=")
			if !found || strings.TrimSpace(k) == "" {
				l.fail("OTEL_RESOURCE_ATTRIBUTES", v, "comma-separated key=value pairs such as deployment.environment.name=prod,team=data")
				break
			}
		}
	}
	// The spec's OTEL_SDK_DISABLED is "true" or "false" (case-insensitive); Bool accepts those.
	t.Disabled = l.Bool("OTEL_SDK_DISABLED", false)
	return t
}

// LoadCommon reads the shared settings. defaultHTTP is the service's own /metrics address.
func (l *Loader) LoadCommon(defaultHTTP string) Common {
	return Common{
		Env:            l.Env,
		DatabaseURL:    l.RequiredSecret("DATABASE_URL", "a postgres:// URL"),
		DBMaxConns:     l.Int("DB_MAX_CONNS", 16, 2, 1000),
		NATSURL:        l.String("NATS_URL", "nats://127.0.0.1:4222"),
		NATS:           l.LoadNATSAuth(),
		NATSReplicas:   l.Int("NATS_REPLICAS", Pick(l, 1, 3, 3), 1, 5),
		HTTPAddr:       l.String("HTTP_ADDR", defaultHTTP),
		LogLevel:       l.Enum("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		LogFormat:      l.Enum("LOG_FORMAT", "json", "json", "text", "auto"),
		MigrateOnStart: l.Bool("MIGRATE_ON_START", l.Env == EnvDev),
		ShutdownGrace:  l.Duration("SHUTDOWN_GRACE", 30*time.Second),
		Tracing:        l.LoadTracing(),
	}
}

// SafeNATSURL returns a NATS server list (comma-separated URLs) with credentials masked, for logs
// and errors: a password, and a token (a user part without a password).
func SafeNATSURL(servers string) string {
	parts := strings.Split(servers, ",")
	for i, raw := range parts {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			parts[i] = "<unparseable nats url>"
			continue
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
