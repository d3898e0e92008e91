package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestProfilesAndOverrides(t *testing.T) {
	t.Parallel()
	l := config.NewLoader(env(map[string]string{"CP_ENV": "prod", "STR_AUX_RUNNER_INTERVAL_MS": "7000"}))
	require.Equal(t, config.EnvProd, l.Env)
	require.Equal(t, 3, config.Pick(l, 1, 2, 3))
	require.Equal(t, 7*time.Second, l.Millis("STR_AUX_RUNNER_INTERVAL_MS", 40*time.Second))
	require.NoError(t, l.Err())
}

func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	l := config.NewLoader(env(map[string]string{"CP_ENV": "qa", "RUN_JOBS": "maybe", "STR_AUX_RUNNER_INTERVAL_MS": "-5"}))
	l.Bool("RUN_JOBS", false)
	l.Millis("STR_AUX_RUNNER_INTERVAL_MS", time.Second)
	l.Required("DATABASE_URL", "a postgres:// URL")
	err := l.Err()
	require.Error(t, err)
	for _, want := range []string{"CP_ENV", "dev, staging, prod", "RUN_JOBS", "STR_AUX_RUNNER_INTERVAL_MS", "milliseconds", "missing DATABASE_URL"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestSafeNATSURLMasksCredentials(t *testing.T) {
	t.Parallel()
	require.Equal(t, "nats://alice:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222",
		config.SafeNATSURL("nats://alice:hunter2@a:4222,nats://s3cr3tt0ken@b:4222,nats://c:4222"))
}

// writeSecret writes content to a file in a test directory and returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// A container platform mounts a secret as a file; X_FILE names it and its content is X's value,
// with the one trailing newline an editor or `echo` adds removed and nothing else.
func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ content, want string }{
		"no newline":        {"postgres://cp:pw@db/cp", "postgres://cp:pw@db/cp"},
		"one newline":       {"postgres://cp:pw@db/cp\n", "postgres://cp:pw@db/cp"},
		"crlf":              {"k3y\r\n", "k3y"},
		"only one newline":  {"k3y\n\n", "k3y\n"},
		"inner blanks kept": {" pass word \n", " pass word "},
	} {
		l := config.NewLoader(env(map[string]string{"BINANCE_API_SECRET_FILE": writeSecret(t, tc.content)}))
		require.Equal(t, tc.want, l.Secret("BINANCE_API_SECRET"), name)
		require.NoError(t, l.Err(), name)
	}

	l := config.NewLoader(env(map[string]string{"DATABASE_URL_FILE": writeSecret(t, "postgres://cp:pw@db/cp\n")}))
	require.Equal(t, "postgres://cp:pw@db/cp", l.LoadCommon("127.0.0.1:0").DatabaseURL)
	require.NoError(t, l.Err())

	// The plain variable still works, trimmed like every variable; an empty one counts as unset.
	l = config.NewLoader(env(map[string]string{"BINANCE_API_KEY": " k3y ", "DATABASE_URL": "",
		"DATABASE_URL_FILE": writeSecret(t, "postgres://db/cp")}))
	require.Equal(t, "k3y", l.Secret("BINANCE_API_KEY"))
	require.Equal(t, "postgres://db/cp", l.RequiredSecret("DATABASE_URL", "a postgres:// URL"))
	require.Empty(t, l.Secret("BINANCE_API_SECRET"))
	require.NoError(t, l.Err())
}

// Every way a secret's configuration can be wrong names the variables (and the path), and no error
// ever holds the secret itself.
func TestSecretErrorsNameVariablesNeverTheValue(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cr3t"
	file := writeSecret(t, secret+"\n")
	dir := t.TempDir()
	missing := filepath.Join(dir, "absent")
	big := writeSecret(t, secret+strings.Repeat("x", 70<<10))
	for name, tc := range map[string]struct {
		vars map[string]string
		want []string
	}{
		"both set": {map[string]string{"DATABASE_URL": "postgres://cp:" + secret + "@db/cp", "DATABASE_URL_FILE": file},
			[]string{"both DATABASE_URL and DATABASE_URL_FILE are set"}},
		"missing file": {map[string]string{"DATABASE_URL_FILE": missing},
			[]string{"DATABASE_URL_FILE", missing, "no such file or directory"}},
		"directory": {map[string]string{"DATABASE_URL_FILE": dir},
			[]string{"DATABASE_URL_FILE", dir, "is a directory"}},
		"empty file": {map[string]string{"DATABASE_URL_FILE": writeSecret(t, "\n")},
			[]string{"DATABASE_URL_FILE", "file is empty"}},
		"oversized file": {map[string]string{"DATABASE_URL_FILE": big},
			[]string{"DATABASE_URL_FILE", big, "larger than 64 KiB"}},
		"unset": {map[string]string{}, []string{"missing DATABASE_URL (or DATABASE_URL_FILE)"}},
	} {
		l := config.NewLoader(env(tc.vars))
		require.Empty(t, l.RequiredSecret("DATABASE_URL", "a postgres:// URL"), name)
		err := l.Err()
		require.Error(t, err, name)
		for _, want := range tc.want {
			require.Contains(t, err.Error(), want, name)
		}
		require.NotContains(t, err.Error(), secret, name)
	}

	// An optional secret's bad file is an error too, not a silently disabled feature.
	l := config.NewLoader(env(map[string]string{"BINANCE_API_KEY": secret, "BINANCE_API_KEY_FILE": file,
		"BINANCE_API_SECRET_FILE": missing}))
	require.Empty(t, l.Secret("BINANCE_API_KEY"))
	require.Empty(t, l.Secret("BINANCE_API_SECRET"))
	err := l.Err()
	require.ErrorContains(t, err, "both BINANCE_API_KEY and BINANCE_API_KEY_FILE are set")
	require.ErrorContains(t, err, `invalid BINANCE_API_SECRET_FILE="`+missing+`"`)
	require.NotContains(t, err.Error(), secret)
}

// The trace SDK reads the OTEL_* variables itself and drops a bad value silently; loading refuses
// them at start, naming the variable.
func TestTracingVariables(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env     map[string]string
		want    config.Tracing
		wantErr []string
	}{
		"nothing set: spans made, not exported": {env: map[string]string{}},
		"base endpoint":                         {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: config.Tracing{Export: true}},
		"traces endpoint":                       {env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/v1/traces"}, want: config.Tracing{Export: true}},
		"exporter none":                         {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		"sdk disabled":                          {env: map[string]string{"OTEL_SDK_DISABLED": "TRUE"}, want: config.Tracing{Disabled: true}},
		"sampler ok":                            {env: map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}},
		"bad endpoint": {env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			wantErr: []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http:// or https://"}},
		"bad sampler": {env: map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"},
			wantErr: []string{"OTEL_TRACES_SAMPLER", "parentbased_always_on"}},
		"bad ratio": {env: map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			wantErr: []string{"OTEL_TRACES_SAMPLER_ARG", "ratio"}},
		"bad resource": {env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team=data,oops"},
			wantErr: []string{"OTEL_RESOURCE_ATTRIBUTES", "key=value"}},
		"bad disabled": {env: map[string]string{"OTEL_SDK_DISABLED": "maybe"}, wantErr: []string{"OTEL_SDK_DISABLED"}},
	} {
		t.Run(name, func(t *testing.T) {
			l := config.NewLoader(env(tc.env))
			got := l.LoadTracing()
			if tc.wantErr == nil {
				require.NoError(t, l.Err())
				require.Equal(t, tc.want, got)
				return
			}
			require.Error(t, l.Err())
			for _, w := range tc.wantErr {
				require.Contains(t, l.Err().Error(), w)
			}
		})
	}
}
