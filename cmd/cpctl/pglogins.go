package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/db"
)

// dbGroupRoles are the group roles migration 00016 creates; a service's login is a member of one.
var dbGroupRoles = []string{"cp_orchestrator", "cp_straux", "cp_cinimport", "cp_seeder", "cp_readonly", replicationRole}

// replicationRole logs in itself: REPLICATION is an attribute, which membership does not pass on.
const replicationRole = "cp_replication"

// runPGLogins is `cpctl pg-logins GROUP=URL_FILE...`: for each service URL (a file, as mounted
// secrets are), the login role it names is made a member of GROUP with the URL's password. The
// URL files are the one source of the passwords: compose mounts the same files into the services.
func runPGLogins(ctx context.Context, args []string) int {
	return pgLogins(ctx, args, processEnv())
}

func pgLogins(ctx context.Context, args []string, env cmdEnv) int {
	fs := flag.NewFlagSet("pg-logins", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	var dbf databaseFlag
	dbf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: cpctl pg-logins [--database-url URL] GROUP=URL_FILE...\n\n"+
			"Creates (or brings in line) the login role each URL names, as a member of GROUP (one of %s),\n"+
			"with the URL's password; for %s, sets that role's own password. Run as the schema owner,\n"+
			"after `cpctl migrate up`. The passwords are never printed.\n\n", strings.Join(dbGroupRoles, ", "), replicationRole)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(env.stderr, "cpctl pg-logins: %v\n", err)
		if isUsageError(err) {
			return 2
		}
		return 1
	}
	type login struct{ group, user, password, file string }
	var logins []login
	for _, a := range fs.Args() {
		group, file, ok := strings.Cut(a, "=")
		if !ok || !slices.Contains(dbGroupRoles, group) || file == "" {
			return fail(usageErrorf("argument %q: want GROUP=URL_FILE with GROUP one of %s", a, strings.Join(dbGroupRoles, ", ")))
		}
		// Read as the services read DATABASE_URL_FILE.
		raw, _, err := config.LookupSecret(func(k string) (string, bool) {
			if k == "URL"+config.FileSuffix {
				return file, true
			}
			return "", false
		}, "URL")
		if err != nil {
			return fail(usageErrorf("%s: %v", group, err))
		}
		user, pw, err := urlLogin(raw)
		if err != nil {
			return fail(usageErrorf("%s: %s: %v", group, file, err))
		}
		if group == replicationRole && user != replicationRole {
			return fail(usageErrorf("%s: %s logs in as %q: the relay's URL must log in as %s itself (REPLICATION is not inherited)", group, file, user, replicationRole))
		}
		logins = append(logins, login{group, user, pw, file})
	}
	if len(logins) == 0 {
		return fail(usageErrorf("no GROUP=URL_FILE given"))
	}
	owner, err := dbf.resolve(env)
	if err != nil {
		return fail(err)
	}
	conn, err := pgx.Connect(ctx, owner)
	if err != nil {
		return fail(fmt.Errorf("connect %s: %w", db.SafeURL(owner), db.Redact(err, owner)))
	}
	defer conn.Close(context.Background())
	for _, l := range logins {
		if err := ensureLogin(ctx, conn, l.group, l.user, l.password); err != nil {
			return fail(err)
		}
		fmt.Fprintf(env.stdout, "%-16s login %s, password from %s\n", l.group, l.user, l.file)
	}
	return 0
}

// urlLogin returns the user and password of a postgres:// URL; both are required.
func urlLogin(raw string) (user, password string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("not a postgres:// URL") // url's error would quote the password
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", "", fmt.Errorf("scheme %q: want postgres://", u.Scheme)
	}
	if u.User == nil {
		return "", "", fmt.Errorf("want a user and a password (postgres://USER:PASSWORD@host/db)")
	}
	pw, ok := u.User.Password()
	if u.User.Username() == "" || !ok || pw == "" {
		return "", "", fmt.Errorf("want a user and a password (postgres://USER:PASSWORD@host/db)")
	}
	return u.User.Username(), pw, nil
}

// ensureLogin makes user a login role with password in group (created when missing; its other
// memberships and rights are left alone). For the replication role it only sets the password.
func ensureLogin(ctx context.Context, conn *pgx.Conn, group, user, password string) error {
	ident := pgx.Identifier{user}.Sanitize()
	if group != replicationRole {
		_, err := conn.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
			IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE %s LOGIN; END IF;
		END $$`, sqlLiteral(user), ident))
		if err == nil {
			_, err = conn.Exec(ctx, fmt.Sprintf("GRANT %s TO %s", pgx.Identifier{group}.Sanitize(), ident))
		}
		if err != nil {
			return fmt.Errorf("login role %s in %s (is migration 00016 applied?): %w", user, group, err)
		}
	}
	// Not a bind parameter: utility statements take none. A Postgres error carries its message,
	// not the statement, so the password stays out of it.
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s LOGIN PASSWORD %s", ident, sqlLiteral(password))); err != nil {
		return fmt.Errorf("set the password of role %s: %w", user, err)
	}
	return nil
}

// sqlLiteral quotes s as a standard SQL string literal.
func sqlLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
