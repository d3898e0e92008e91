package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// pg-logins makes each URL file's user a login in its group, from the file's password, and
// never prints the password; a second run changes nothing.
func TestPGLoginsFromURLFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewDB(t)
	dir := t.TempDir()
	write := func(name, url string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(url+"\n"), 0o600))
		return p
	}
	// Login names unique to the test: roles are cluster-wide.
	straux := "pgl_straux_" + d.Name
	straFile := write("straux", fmt.Sprintf("postgres://%s:s3cret-'q@postgres:5432/cryptopill?sslmode=disable", straux))
	relayFile := write("relay", "postgres://cp_replication:r3lay@postgres:5432/cryptopill")
	for range 2 {
		e := newTestEnv(map[string]string{"DATABASE_URL": d.URL})
		code := pgLogins(ctx, []string{"cp_straux=" + straFile, "cp_replication=" + relayFile}, e.cmdEnv)
		require.Equal(t, 0, code, e.stderr.String())
		require.NotContains(t, e.stdout.String()+e.stderr.String(), "s3cret")
		require.NotContains(t, e.stdout.String()+e.stderr.String(), "r3lay")
	}
	t.Cleanup(func() { _, _ = d.Pool.Exec(context.Background(), `DROP ROLE IF EXISTS `+straux) })
	var login, member, hasPassword bool
	require.NoError(t, d.Pool.QueryRow(ctx, `SELECT rolcanlogin, pg_has_role(rolname, 'cp_straux', 'MEMBER'),
		(SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1) FROM pg_roles WHERE rolname = $1`, straux).Scan(&login, &member, &hasPassword))
	require.True(t, login && member && hasPassword)

	for _, tc := range []struct{ arg, want string }{
		{"cp_nobody=" + straFile, "GROUP one of"},
		{"cp_straux", "GROUP one of"},
		{"cp_replication=" + straFile, "must log in as cp_replication itself"},
		{"cp_straux=" + write("nopw", "postgres://straux@postgres/cryptopill"), "want a user and a password"},
		{"cp_straux=" + filepath.Join(dir, "missing"), "missing"},
	} {
		e := newTestEnv(map[string]string{"DATABASE_URL": d.URL})
		require.Equal(t, 2, pgLogins(ctx, []string{tc.arg}, e.cmdEnv), tc.arg)
		require.Contains(t, e.stderr.String(), tc.want, tc.arg)
		require.NotContains(t, e.stderr.String(), "s3cret")
	}
}
