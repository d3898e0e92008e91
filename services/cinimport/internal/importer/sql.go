package importer

import (
	"embed"
	"strings"
	"text/template"
)

var (
	//go:embed sql/lock_sessions.sql
	lockSessionsSQL string
	//go:embed sql/unlock_sessions.sql
	unlockSessionsSQL string
	//go:embed sql/open_sessions.sql
	openSessionsSQL string
	//go:embed sql/plan_sessions.sql
	planSessionsSQL string
	//go:embed sql/new_trades_span.sql
	newTradesSpanSQL string
	//go:embed sql/advance_cursor.sql
	advanceCursorSQL string
	//go:embed sql/count_new_trades.sql
	countNewTradesSQL string
	//go:embed sql/note_pending.sql
	notePendingSQL string
	//go:embed sql/resolve_pending.sql
	resolvePendingSQL string
	//go:embed sql/*.sql.tmpl
	templates embed.FS

	marketsSQL = render("markets.sql.tmpl", nil)
	// The parts of an import (see import_moves.sql.tmpl).
	importNewSQL     = renderImport("new")
	importStoredSQL  = renderImport("stored")
	importRescanSQL  = renderImport("rescan")
	importPendingSQL = renderImport("pending")
)

func renderImport(part string) string {
	return render("import_moves.sql.tmpl", struct{ Part string }{part})
}

func render(name string, data any) string {
	var b strings.Builder
	t := template.Must(template.ParseFS(templates, "sql/*.sql.tmpl"))
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		panic(err) // the templates are embedded; a failure is a build bug that every test catches
	}
	return b.String()
}
