package tradesync

import _ "embed"

var (
	//go:embed sql/symbols.sql
	symbolsSQL string
	//go:embed sql/cursor.sql
	cursorSQL string
	//go:embed sql/store_trades.sql
	storeTradesSQL string
)
