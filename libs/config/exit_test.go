package config_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/proctest"
)

// Every service binary refuses bad configuration the same way: exit status 2 and a message that
// names each bad variable and what it accepts, before touching Postgres or NATS.
func TestServicesExitTwoNamingTheVariable(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"orchestrator", "straux", "cinimport", "seeder"} {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			bin := proctest.Build(t, "cryptopill.dev/jobs/services/"+svc)
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "RUN_JOBS=1", "CP_ENV=qa", "DATABASE_URL=", "LOG_LEVEL=loud",
				"STR_AUX_RUNNER_INTERVAL_MS=soon")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "%s: %v\n%s", svc, err, out)
			require.Equal(t, 2, exit.ExitCode(), string(out))
			for _, want := range []string{`invalid CP_ENV="qa": want one of dev, staging, prod`,
				"missing DATABASE_URL", `invalid LOG_LEVEL="loud"`} {
				require.Contains(t, string(out), want)
			}
			if svc == "orchestrator" {
				require.Contains(t, string(out), `invalid STR_AUX_RUNNER_INTERVAL_MS="soon": want a positive whole number of milliseconds`)
			}
		})
	}
}

// The _FILE forms reach every binary: both forms set, or a secret file that cannot be read, exits 2
// naming the variables and the path, and the secret never reaches the output.
func TestServicesExitTwoNamingTheSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "database_url")
	require.NoError(t, os.WriteFile(file, []byte("postgres://cp:s3cret@db/cp\n"), 0o600))
	missing := filepath.Join(dir, "absent")
	for _, svc := range []string{"orchestrator", "straux", "cinimport", "seeder"} {
		t.Run(svc, func(t *testing.T) {
			t.Parallel()
			bin := proctest.Build(t, "cryptopill.dev/jobs/services/"+svc)
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "RUN_JOBS=1", "CP_ENV=dev",
				"DATABASE_URL=postgres://cp:s3cret@db/cp", "DATABASE_URL_FILE="+file,
				"BINANCE_API_KEY=k3y", "BINANCE_API_SECRET_FILE="+missing)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.True(t, errors.As(err, &exit), "%s: %v\n%s", svc, err, out)
			require.Equal(t, 2, exit.ExitCode(), string(out))
			require.Contains(t, string(out), "both DATABASE_URL and DATABASE_URL_FILE are set")
			if svc == "cinimport" {
				require.Contains(t, string(out), `invalid BINANCE_API_SECRET_FILE="`+missing+`"`)
			}
			require.NotContains(t, string(out), "s3cret")
			require.NotContains(t, string(out), "k3y")
		})
	}
}
