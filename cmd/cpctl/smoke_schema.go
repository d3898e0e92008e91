package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"cryptopill.dev/jobs/libs/db"
)

// The schema diagnostics: the version the binaries expect (db.CheckSchema), and every table,
// column, index, constraint, function and trigger the migrations create. The list is not written
// down anywhere to drift: the embedded migrations are applied to a scratch database on the same
// server, its catalog is read, and the live database must have each of those objects as defined.
// The scratch database is dropped again; the live one is only read.

// schemaObject is one catalog row: kind (relation, column, index, ...), qualified name, definition.
type schemaObject struct{ kind, name, def string }

func checkSchemaVersion(ctx context.Context, databaseURL string) smokeCheck {
	const name = "schema.version"
	err := db.CheckSchema(ctx, databaseURL)
	var se *db.SchemaError
	switch {
	case err == nil:
		return smokeCheck{Name: name, Status: statusOK, Detail: "every embedded migration is applied"}
	case errors.As(err, &se), errors.Is(err, db.ErrNotMigrated):
		return smokeCheck{Name: name, Status: statusFail, Detail: err.Error()}
	default:
		return errorCheck(name, db.Redact(err, databaseURL))
	}
}

// checkSchemaObjects compares the live database's catalog with the migrations'.
func checkSchemaObjects(ctx context.Context, pool *pgxpool.Pool, databaseURL string) smokeCheck {
	const name = "schema.objects"
	want, err := referenceCatalog(ctx, pool, databaseURL)
	if err != nil {
		return errorCheck(name, err)
	}
	schemas := map[string]bool{}
	for _, o := range want {
		schemas[strings.SplitN(o.name, ".", 2)[0]] = true
	}
	have, err := readCatalog(ctx, pool, slices.Collect(maps.Keys(schemas)))
	if err != nil {
		return errorCheck(name, err)
	}
	live := make(map[string]string, len(have))
	for _, o := range have {
		live[o.kind+" "+o.name] = o.def
	}
	var problems []string
	var findings []smokeFinding
	for _, o := range want {
		def, ok := live[o.kind+" "+o.name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s is missing", o.kind, o.name))
			findings = append(findings, smokeFinding{Series: o.kind + " " + o.name, Reason: "missing; expected " + o.def})
		case def != o.def:
			problems = append(problems, fmt.Sprintf("%s %s is %q, the migrations make %q", o.kind, o.name, def, o.def))
			findings = append(findings, smokeFinding{Series: o.kind + " " + o.name, Reason: fmt.Sprintf("is %q, expected %q", def, o.def)})
		}
	}
	if len(problems) == 0 {
		return smokeCheck{Name: name, Status: statusOK, Detail: fmt.Sprintf("all %d objects the migrations create are present as defined (schemas %s)",
			len(want), strings.Join(slices.Sorted(maps.Keys(schemas)), ", "))}
	}
	detail := strings.Join(problems[:min(3, len(problems))], "; ")
	if len(problems) > 3 {
		detail += fmt.Sprintf("; +%d more (--json lists them)", len(problems)-3)
	}
	return smokeCheck{Name: name, Status: statusFail, Detail: detail + " (recreate them from libs/db/migrations, or cpctl migrate up on a database that missed them)",
		Findings: findings}
}

// referenceCatalog builds a scratch database from the embedded migrations on the live server and
// reads its catalog. It needs CREATEDB; the scratch database is dropped before it returns.
func referenceCatalog(ctx context.Context, pool *pgxpool.Pool, databaseURL string) ([]schemaObject, error) {
	scratch := fmt.Sprintf("cp_smoke_ref_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{scratch}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create scratch database %s for the reference schema (needs CREATEDB): %w", scratch, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = pool.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{scratch}.Sanitize()+" WITH (FORCE)")
	}()
	scratchURL, err := withDatabase(databaseURL, scratch)
	if err != nil {
		return nil, err
	}
	if _, err := db.MigrateUp(ctx, scratchURL); err != nil {
		return nil, fmt.Errorf("migrate scratch database %s: %w", scratch, db.Redact(err, scratchURL))
	}
	sp, err := pgxpool.New(ctx, scratchURL)
	if err != nil {
		return nil, fmt.Errorf("open scratch database %s: %w", scratch, db.Redact(err, scratchURL))
	}
	defer sp.Close()
	rows, err := sp.Query(ctx, mustSQL("smoke_schema_names"))
	if err != nil {
		return nil, fmt.Errorf("scratch schemas: %w", err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scratch schemas: %w", err)
	}
	return readCatalog(ctx, sp, schemas)
}

func readCatalog(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schemas []string) ([]schemaObject, error) {
	rows, err := q.Query(ctx, mustSQL("smoke_schema_catalog"), schemas)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	var out []schemaObject
	var o schemaObject
	if _, err := pgx.ForEachRow(rows, []any{&o.kind, &o.name, &o.def}, func() error { out = append(out, o); return nil }); err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return out, nil
}

// withDatabase is databaseURL naming another database: a postgres:// URL's path, or a
// key=value string's dbname (a later key wins).
func withDatabase(databaseURL, name string) (string, error) {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		u, err := url.Parse(databaseURL)
		if err != nil {
			return "", fmt.Errorf("parse DATABASE_URL %s: %w", db.SafeURL(databaseURL), err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	return databaseURL + " dbname=" + name, nil
}
