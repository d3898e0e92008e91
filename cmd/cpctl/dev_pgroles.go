package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"

	"cryptopill.dev/jobs/libs/db"
)

// devDBRoles are the services' Postgres identities in the dev stack: a login role per service,
// named after it, in its group role (migration 00016). The relay logs in as cp_replication
// (replicationRole) itself, since REPLICATION is not passed on by membership.
var devDBRoles = []struct{ service, login, group string }{
	{"orchestrator", "orchestrator", "cp_orchestrator"},
	{"straux", "straux", "cp_straux"},
	{"cinimport", "cinimport", "cp_cinimport"},
	{"seeder", "seeder", "cp_seeder"},
}

// devHBA makes passwords count in the dev cluster: the operator's superuser (the schema owner,
// which migrates and seeds) is trusted on the loopback interface, every other role must give its
// password (SCRAM). Logical replication connections match the "all" database rules.
var devHBA = []string{
	"# TYPE  DATABASE  USER      ADDRESS       METHOD",
	"local   all       all                     trust",
	"host    all       postgres  127.0.0.1/32  trust",
	"host    all       all       127.0.0.1/32  scram-sha-256",
}

// provisionDevRoles gives every service its own Postgres login: it creates the login roles (or
// brings them in line), sets their passwords and cp_replication's from passwords generated on
// the first run and kept in secretsDir, and writes each service's DATABASE_URL (and the relay's
// CDC_DATABASE_URL) to a file there. It returns, per service, the environment that points it at
// those files; the URL variables themselves are blanked so an operator's exported DATABASE_URL
// cannot reach a service.
func provisionDevRoles(ctx context.Context, ownerURL, secretsDir string) (map[string][]string, error) {
	if err := os.MkdirAll(secretsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", secretsDir, err)
	}
	conn, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", db.SafeURL(ownerURL), db.Redact(err, ownerURL))
	}
	defer conn.Close(context.Background())

	urlFile := func(group, login, name string) (string, error) {
		pw, err := devPassword(filepath.Join(secretsDir, login+".password"))
		if err != nil {
			return "", err
		}
		if err := ensureLogin(ctx, conn, group, login, pw); err != nil {
			return "", err
		}
		u, err := url.Parse(ownerURL)
		if err != nil {
			return "", fmt.Errorf("parse the owner's url: %w", err)
		}
		u.User = url.UserPassword(login, pw)
		path := filepath.Join(secretsDir, name)
		if err := os.WriteFile(path, []byte(u.String()+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
		return path, nil
	}

	out := map[string][]string{}
	for _, r := range devDBRoles {
		path, err := urlFile(r.group, r.login, r.service+".database_url")
		if err != nil {
			return nil, err
		}
		out[r.service] = []string{"DATABASE_URL=", "DATABASE_URL_FILE=" + path}
	}
	path, err := urlFile(replicationRole, replicationRole, "orchestrator.cdc_database_url")
	if err != nil {
		return nil, err
	}
	out["orchestrator"] = append(out["orchestrator"], "CDC_DATABASE_URL=", "CDC_DATABASE_URL_FILE="+path)
	return out, nil
}

// devPassword returns the password kept in path, generating it on first use.
func devPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate a password: %w", err)
	}
	pw := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return pw, nil
}
