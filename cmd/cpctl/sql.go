package main

import (
	"embed"
	"fmt"
)

// cpctlSQL holds the statements of the commands that read the database (sql/<command>_*.sql).
//
//go:embed sql/*.sql
var cpctlSQL embed.FS

// mustSQL is the embedded statement sql/<name>.sql; a missing one is a build mistake.
func mustSQL(name string) string {
	b, err := cpctlSQL.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic(fmt.Sprintf("cpctl: embedded sql/%s.sql: %v", name, err))
	}
	return string(b)
}
