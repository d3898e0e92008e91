package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
	"cryptopill.dev/jobs/libs/pgcluster"
)

// The dev stack's cluster, with its pg_hba.conf, gives each service a login of its own with a
// generated password (checked: a wrong one is refused), read by the services from the file
// DATABASE_URL_FILE names; the passwords are kept across runs.
func TestDevRolesHaveTheirOwnPasswords(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Not t.TempDir: the server may run as the postgres user, which must reach the directory.
	dir, err := os.MkdirTemp("", "cpctl-devroles-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	c, err := pgcluster.New(pgcluster.Config{Dir: dir, HBA: devHBA})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(context.Background()); _ = c.Remove() })
	require.NoError(t, c.Start(ctx))
	require.NoError(t, ensureDatabase(ctx, c.DSN("postgres"), devDatabase))
	ownerURL := c.DSN(devDatabase)
	_, err = db.MigrateUp(ctx, ownerURL)
	require.NoError(t, err)

	secrets := filepath.Join(t.TempDir(), "secrets")
	env, err := provisionDevRoles(ctx, ownerURL, secrets)
	require.NoError(t, err)
	st, err := os.Stat(secrets)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	want := map[string]struct{ user, group string }{
		"orchestrator": {"orchestrator", "cp_orchestrator"},
		"straux":       {"straux", "cp_straux"},
		"cinimport":    {"cinimport", "cp_cinimport"},
		"seeder":       {"seeder", "cp_seeder"},
	}
	urls := map[string]string{}
	for service, w := range want {
		vars := map[string]string{"DATABASE_URL": "postgres://operator@elsewhere/x"} // an operator's exported URL
		for _, kv := range env[service] {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
		u, ok, err := config.LookupSecret(lookup, "DATABASE_URL")
		require.NoError(t, err, service)
		require.True(t, ok, service)
		urls[service] = u
		st, err := os.Stat(vars["DATABASE_URL_FILE"])
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), service)

		conn, err := pgx.Connect(ctx, u)
		require.NoError(t, err, service)
		var user string
		var member bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT current_user, pg_has_role(current_user, $1, 'MEMBER')`, w.group).Scan(&user, &member))
		require.NoError(t, conn.Close(ctx))
		require.Equal(t, w.user, user)
		require.True(t, member, "%s in %s", user, w.group)

		bad, err := url.Parse(u)
		require.NoError(t, err)
		bad.User = url.UserPassword(w.user, "wrong")
		_, err = pgx.Connect(ctx, bad.String())
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "a wrong password is refused: %v", err)
		require.Equal(t, "28P01", pgErr.Code) // invalid_password
	}

	// The relay's URL: cp_replication with its password, able to open a replication connection.
	relayVars := map[string]string{}
	for _, kv := range env["orchestrator"] {
		k, v, _ := strings.Cut(kv, "=")
		relayVars[k] = v
	}
	relayURL, ok, err := config.LookupSecret(func(k string) (string, bool) { v, ok := relayVars[k]; return v, ok }, "CDC_DATABASE_URL")
	require.NoError(t, err)
	require.True(t, ok)
	cfg, err := pgconn.ParseConfig(relayURL)
	require.NoError(t, err)
	require.Equal(t, replicationRole, cfg.User)
	cfg.RuntimeParams["replication"] = "database"
	rc, err := pgconn.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, rc.Close(ctx))

	// A second run keeps the passwords.
	again, err := provisionDevRoles(ctx, ownerURL, secrets)
	require.NoError(t, err)
	require.Equal(t, env, again)
	for service, u := range urls {
		b, err := os.ReadFile(strings.TrimPrefix(again[service][1], "DATABASE_URL_FILE="))
		require.NoError(t, err)
		require.Equal(t, u, strings.TrimSpace(string(b)), service)
	}
}
