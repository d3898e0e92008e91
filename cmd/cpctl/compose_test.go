package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// TestComposeFile loads compose.yaml with the compose-spec loader (as `docker compose` does) and
// checks that every service, image, dependency and variable the stack needs is there.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root), cli.WithName("cryptopill"))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "compose.yaml must load")

	want := []string{"nats", "postgres", "migrate", "seed", "simex", "orchestrator", "straux", "cinimport", "seeder"}
	require.ElementsMatch(t, want, p.ServiceNames())

	for name, svc := range p.Services {
		require.NotEmpty(t, svc.Image, "service %s has no image", name)
		for dep := range svc.DependsOn {
			_, ok := p.Services[dep]
			require.True(t, ok, "service %s depends on unknown service %s", name, dep)
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeVolume {
				_, ok := p.Volumes[v.Source]
				require.True(t, ok, "service %s mounts undeclared volume %s", name, v.Source)
			}
		}
	}

	// The image our binaries run in is built from the repository's Dockerfile.
	mig := p.Services["migrate"]
	require.NotNil(t, mig.Build, "migrate builds the image")
	_, err = os.Stat(filepath.Join(mig.Build.Context, "Dockerfile"))
	require.NoError(t, err)
	for _, name := range []string{"migrate", "seed", "simex", "orchestrator", "straux", "cinimport", "seeder"} {
		require.Equal(t, mig.Image, p.Services[name].Image, "%s runs the project image", name)
	}

	nats := p.Services["nats"]
	require.Contains(t, nats.Command, "--jetstream")
	require.NotNil(t, nats.HealthCheck)
	require.NotEmpty(t, nats.Volumes)

	pg := p.Services["postgres"]
	require.Contains(t, strings.Join(pg.Command, " "), "wal_level=logical")
	require.Contains(t, strings.Join(pg.Command, " "), "max_slot_wal_keep_size=", "a slot nobody reads must not fill the disk")
	require.NotNil(t, pg.HealthCheck)
	require.NotEmpty(t, pg.Volumes)
	require.Equal(t, types.ServiceConditionHealthy, p.Services["migrate"].DependsOn["postgres"].Condition)
	require.Equal(t, []string{"cpctl", "migrate", "up"}, []string(mig.Command))

	// Each service: waits for the migration and for NATS, serves health checks, has its variables.
	common := []string{"CP_ENV", "DATABASE_URL", "NATS_URL", "HTTP_ADDR"}
	own := map[string][]string{
		"orchestrator": {"RUN_JOBS", "STR_AUX_RUNNER_INTERVAL_MS", "STR_AUX_RUNNER_SESSION_ID", "CIN_IMPORT_INTERVAL_MS", "CDC_SLOT", "CDC_PUBLICATION"},
		"straux":       {"BINANCE_BASE_URL"},
		"cinimport":    {"BINANCE_BASE_URL", "BINANCE_API_KEY", "BINANCE_API_SECRET"},
		"seeder":       nil,
	}
	for name, vars := range own {
		svc := p.Services[name]
		require.Equal(t, []string{name}, []string(svc.Command))
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, svc.DependsOn["migrate"].Condition, name)
		require.Equal(t, types.ServiceConditionHealthy, svc.DependsOn["nats"].Condition, name)
		require.NotNil(t, svc.HealthCheck, name)
		require.True(t, slices.Contains(svc.HealthCheck.Test, "http://127.0.0.1:8080/readyz"), name)
		for _, v := range append(slices.Clone(common), vars...) {
			val, ok := svc.Environment[v]
			require.True(t, ok && val != nil && *val != "", "service %s lacks %s", name, v)
		}
		require.Contains(t, *svc.Environment["DATABASE_URL"], "@postgres:5432/", name)
		require.Equal(t, "nats://nats:4222", *svc.Environment["NATS_URL"], name)
	}
	require.Equal(t, "1", *p.Services["orchestrator"].Environment["RUN_JOBS"])
}
