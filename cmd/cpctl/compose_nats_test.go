package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/events"
	"cryptopill.dev/jobs/libs/natsauth"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// natsServices are the compose services that connect to NATS, each as its own identity.
var natsServices = []string{events.ServiceOrchestrator, events.ServiceStraux, events.ServiceCinimport, events.ServiceSeeder}

// Under compose, NATS runs deploy/nats with the users `cpctl nats-keys` writes, and each service
// gets its own nkey seed as a mounted secret file, never a credential in its environment. The
// mounts, put together as the container sees them, make a server that admits each service's
// secret and refuses a client without one.
func TestComposeNATSIdentities(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	root := repoRoot(t)

	// What `make compose-keys` writes, in a scratch copy of the mounted directory.
	keysDir := filepath.Join(root, ".data", "compose", "nats")
	scratch := t.TempDir()
	keys, err := natsauth.WriteKeysMode(filepath.Join(scratch, "keys"), events.NewTopology(events.TopologyConfig{}), 0o644)
	require.NoError(t, err)
	fromKeys := func(hostPath string) string { // the scratch file standing for a mounted one
		rel, err := filepath.Rel(keysDir, hostPath)
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(rel, ".."), "%s is not under .data/compose/nats", hostPath)
		return filepath.Join(keys.Dir, rel)
	}

	// The nats container's /etc/nats, file by file from its mounts.
	etc := filepath.Join(scratch, "etc")
	require.NoError(t, os.MkdirAll(etc, 0o755))
	mounted := map[string]bool{}
	for _, v := range p.Services["nats"].Volumes {
		if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Target, "/etc/nats/") {
			continue
		}
		require.True(t, v.ReadOnly, "%s is mounted read-only", v.Target)
		src := v.Source
		if strings.HasPrefix(src, keysDir) {
			src = fromKeys(src)
		}
		b, err := os.ReadFile(src)
		require.NoError(t, err, v.Source)
		require.NoError(t, os.WriteFile(filepath.Join(etc, filepath.Base(v.Target)), b, 0o644))
		mounted[filepath.Base(v.Target)] = true
	}
	require.Equal(t, map[string]bool{"nats.conf": true, natsauth.PermissionsFile: true, natsauth.UsersFile: true}, mounted)
	srv := natstest.NewServerFromConfig(t, filepath.Join(etc, "nats.conf"))
	_, err = nats.Connect(srv.URL)
	require.ErrorIs(t, err, nats.ErrAuthorization, "no anonymous client")

	for _, name := range natsServices {
		svc := p.Services[name]
		// Its NATS seed, beside its Postgres URL files (compose_test.go checks those).
		var secret types.ServiceSecretConfig
		for _, sc := range svc.Secrets {
			if strings.HasSuffix(sc.Source, "_nkey") {
				require.Empty(t, secret.Source, "%s mounts two NATS seeds", name)
				secret = sc
			}
		}
		require.Equal(t, name+"_nkey", secret.Source, name)
		top, ok := p.Secrets[secret.Source]
		require.True(t, ok, "%s uses undeclared secret %s", name, secret.Source)
		require.Equal(t, keys.SeedFile(name), fromKeys(top.File), "%s's secret is the seed cpctl nats-keys writes for it", name)
		target := secret.Target // the loader resolves the short form to /run/secrets/<source>
		if target == "" {
			target = "/run/secrets/" + secret.Source
		}
		require.Equal(t, target, *svc.Environment["NATS_NKEY_SEED_FILE"], name)
		for _, v := range []string{"NATS_PASSWORD", "NATS_TOKEN", "NATS_USER", "NATS_CREDS", "NATS_NKEY"} {
			_, set := svc.Environment[v]
			require.False(t, set, "%s: %s in the environment (a secret belongs in a mounted file)", name, v)
		}
		// The seed, as mounted, authenticates on that server.
		seed, err := nats.NkeyOptionFromSeed(fromKeys(top.File))
		require.NoError(t, err)
		nc, err := nats.Connect(srv.URL, seed)
		require.NoError(t, err, "%s connects with its secret", name)
		nc.Close()
	}
	for _, name := range []string{"migrate", "seed", "simex"} {
		for _, sc := range p.Services[name].Secrets {
			require.False(t, strings.HasSuffix(sc.Source, "_nkey"), "%s does not use NATS, but mounts %s", name, sc.Source)
		}
	}
}
