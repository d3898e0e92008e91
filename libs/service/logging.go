package service

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
)

// Log formats (LOG_FORMAT). JSON is the default everywhere: log shippers and `jq` read it. text is
// for people: one coloured line per record when the output is a terminal.
const (
	LogFormatJSON = "json"
	LogFormatText = "text"
	LogFormatAuto = "auto" // text when the output is a terminal, else json
)

// NewLogger returns a logger on stderr at level (debug, info, warn, error), in the format LOG_FORMAT
// names (json, the default; text; auto).
func NewLogger(level string) *slog.Logger {
	return slog.New(NewLogHandler(os.Stderr, os.Getenv("LOG_FORMAT"), level))
}

// NewLogHandler is the base handler NewLogger uses, on w. An unknown format is json: config.LoadCommon
// refuses one before a service gets here, and a logger must never be missing.
func NewLogHandler(w io.Writer, format, level string) slog.Handler {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	tty := IsTerminal(w)
	if format == LogFormatText || (format == LogFormatAuto && tty) {
		return tint.NewHandler(w, &tint.Options{Level: l, TimeFormat: time.TimeOnly, NoColor: !tty})
	}
	return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
}

// IsTerminal says whether w is a terminal (colour and text logs are for it).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
