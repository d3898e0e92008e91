package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	loginMu sync.Mutex
	logins  = map[string]bool{}
)

// ReplicationRole is the relay's role (migration 00016): REPLICATION is an attribute membership
// does not pass on, so tests log in as it directly.
const ReplicationRole = "cp_replication"

// RoleURL returns a URL for d as a login role that is a member of group, one of the group roles
// the migrations create (cp_orchestrator, cp_straux, cp_cinimport, cp_seeder, cp_readonly), as a
// deployment connects: the login role has no rights of its own. For ReplicationRole it logs in as
// that role. Login roles are cluster-wide and made once per cluster (the cluster trusts local
// connections, so they have no password).
func (d *DB) RoleURL(t testing.TB, group string) string {
	t.Helper()
	login := group
	if group != ReplicationRole {
		login = group + "_login"
		loginMu.Lock()
		defer loginMu.Unlock()
		if !logins[login] {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := admin.Exec(ctx, fmt.Sprintf(`DO $$ BEGIN
				IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %[1]s) THEN
					CREATE ROLE %[2]s LOGIN IN ROLE %[3]s;
				END IF;
			END $$`, quoteLiteral(login), pgx.Identifier{login}.Sanitize(), pgx.Identifier{group}.Sanitize()))
			if err != nil {
				t.Fatalf("pgtest: create login role %s in %s: %v", login, group, err)
			}
			logins[login] = true
		}
	}
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", d.URL, err)
	}
	u.User = url.User(login)
	return u.String()
}

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
