package importer

import (
	_ "embed"
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
	//go:embed sql/markets.sql
	marketsSQL string
	//go:embed sql/count_moves.sql
	countMovesSQL string
	//go:embed sql/import_moves.sql.tmpl
	importMovesTmpl string

	// importNewSQL and importLateSQL are the two parts of an import (see import_moves.sql.tmpl).
	importNewSQL  = renderImport(false)
	importLateSQL = renderImport(true)
)

func renderImport(late bool) string {
	var b strings.Builder
	t := template.Must(template.New("import_moves").Parse(importMovesTmpl))
	if err := t.Execute(&b, struct{ Late bool }{late}); err != nil {
		panic(err) // the template is embedded; a failure is a build bug that every test catches
	}
	return b.String()
}
