package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/testkit/pgtest"
)

// testEnv is a command environment with captured output and only the given variables set.
type testEnv struct {
	cmdEnv
	stdout, stderr *bytes.Buffer
}

func newTestEnv(vars map[string]string) testEnv {
	var out, errOut bytes.Buffer
	return testEnv{
		cmdEnv: cmdEnv{stdout: &out, stderr: &errOut, lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		}},
		stdout: &out,
		stderr: &errOut,
	}
}

// statusLine matches one row of `migrate status`: version, applied, file.
var statusLine = regexp.MustCompile(`(?m)^(\d+)\s+(yes|no)\s+(\d+_\w+\.sql)$`)

func TestDispatchMigrateStatus(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	require.Equal(t, 0, dispatch(context.Background(), []string{"migrate", "status", "--database-url", d.URL}))
}

func TestMigrateStatusShowsEveryMigrationApplied(t *testing.T) {
	t.Parallel()
	d := pgtest.NewDB(t)
	env := newTestEnv(nil)
	require.Equal(t, 0, migrateCommand(context.Background(), []string{"status", "--database-url", d.URL}, env.cmdEnv), env.stderr.String())

	out := env.stdout.String()
	require.Contains(t, out, "VERSION")
	rows := statusLine.FindAllStringSubmatch(out, -1)
	require.GreaterOrEqual(t, len(rows), 6, out)
	for _, r := range rows {
		require.Equal(t, "yes", r[2], r[0])
	}
	require.Contains(t, out, "00001_schemas.sql")
	require.Contains(t, out, "00007_ops.sql")
	require.Regexp(t, `\d+ migrations: \d+ applied, 0 pending`, out)
}

func TestMigrateUpThenStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewEmptyDB(t)
	vars := map[string]string{"DATABASE_URL": d.URL} // the flag's default comes from the environment

	before := newTestEnv(vars)
	require.Equal(t, 0, migrateCommand(ctx, []string{"status"}, before.cmdEnv), before.stderr.String())
	rows := statusLine.FindAllStringSubmatch(before.stdout.String(), -1)
	require.NotEmpty(t, rows)
	for _, r := range rows {
		require.Equal(t, "no", r[2], r[0])
	}

	up := newTestEnv(vars)
	require.Equal(t, 0, migrateCommand(ctx, []string{"up"}, up.cmdEnv), up.stderr.String())
	for _, r := range rows {
		require.Contains(t, up.stdout.String(), "applied "+r[3])
	}
	// Progress goes to stderr: plain lines off a terminal, ending with the count.
	require.Contains(t, up.stderr.String(), fmt.Sprintf("migrations applied: done %d", len(rows)))

	again := newTestEnv(vars)
	require.Equal(t, 0, migrateCommand(ctx, []string{"--database-url", d.URL, "up"}, again.cmdEnv), again.stderr.String())
	require.Contains(t, again.stdout.String(), "nothing to apply")
	require.NotContains(t, again.stdout.String(), "applied 0")
}

func TestMigrateUsageErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no database url": {[]string{"status"}, "DATABASE_URL"},
		"no action":       {[]string{"--database-url", "postgres://x/y"}, "missing action"},
		"unknown action":  {[]string{"sideways", "--database-url", "postgres://x/y"}, `unknown action "sideways"`},
		"extra arguments": {[]string{"up", "now", "--database-url", "postgres://x/y"}, "unexpected arguments"},
		"unknown flag":    {[]string{"up", "--force"}, "flag provided but not defined"},
	} {
		env := newTestEnv(nil)
		require.Equal(t, 2, migrateCommand(ctx, tc.args, env.cmdEnv), name)
		require.Contains(t, env.stderr.String(), tc.want, name)
		require.Empty(t, env.stdout.String(), name)
	}
}

func TestMigrateUnreachableDatabase(t *testing.T) {
	t.Parallel()
	env := newTestEnv(nil)
	url := "postgres://cp:s3cret@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
	require.Equal(t, 1, migrateCommand(context.Background(), []string{"status", "--database-url", url}, env.cmdEnv))
	require.NotEmpty(t, env.stderr.String())
	require.False(t, strings.Contains(env.stderr.String()+env.stdout.String(), "s3cret"), "the password is never printed")
}

// DATABASE_URL_FILE is read as the services read it: a mounted secret file, its trailing newline
// removed; both forms set, or a file that cannot be read, is a usage error that never prints the URL.
func TestMigrateDatabaseURLFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := pgtest.NewEmptyDB(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "database_url")
	require.NoError(t, os.WriteFile(file, []byte(d.URL+"\n"), 0o600))

	ok := newTestEnv(map[string]string{"DATABASE_URL_FILE": file})
	require.Equal(t, 0, migrateCommand(ctx, []string{"status"}, ok.cmdEnv), ok.stderr.String())
	require.Regexp(t, `\d+ migrations: 0 applied, \d+ pending`, ok.stdout.String())

	const url = "postgres://cp:s3cret@db/cp"
	missing := filepath.Join(dir, "absent")
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"both set":     {map[string]string{"DATABASE_URL": url, "DATABASE_URL_FILE": file}, "both DATABASE_URL and DATABASE_URL_FILE are set"},
		"missing file": {map[string]string{"DATABASE_URL_FILE": missing}, `invalid DATABASE_URL_FILE="` + missing + `"`},
	} {
		env := newTestEnv(tc.vars)
		require.Equal(t, 2, migrateCommand(ctx, []string{"status"}, env.cmdEnv), name)
		require.Contains(t, env.stderr.String(), tc.want, name)
		require.NotContains(t, env.stderr.String(), "s3cret", name)
		require.NotContains(t, env.stderr.String(), d.URL, name)
	}
}
