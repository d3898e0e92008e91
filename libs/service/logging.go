package service

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"go.opentelemetry.io/otel/trace"
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
// names (json, the default; text; auto). A line logged with a context inside a span (slog's
// *Context methods) carries its trace_id and span_id.
func NewLogger(level string) *slog.Logger {
	return slog.New(NewTraceHandler(NewLogHandler(os.Stderr, os.Getenv("LOG_FORMAT"), level)))
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

// WithTraceIDs returns logger with its handler wrapped in a TraceHandler, unless it already is.
func WithTraceIDs(logger *slog.Logger) *slog.Logger {
	if _, ok := logger.Handler().(*TraceHandler); ok {
		return logger
	}
	return slog.New(NewTraceHandler(logger.Handler()))
}

// TraceHandler adds trace_id and span_id to every record logged with a context holding a valid
// span context, so a log line found by its trace id leads to the trace and back.
type TraceHandler struct {
	inner slog.Handler
}

// NewTraceHandler wraps h.
func NewTraceHandler(h slog.Handler) *TraceHandler { return &TraceHandler{inner: h} }

// Enabled reports whether the wrapped handler handles records at level.
func (h *TraceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle adds the span's ids, when ctx has one, and passes the record on.
func (h *TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.inner.Handle(ctx, r)
}

// WithAttrs keeps the wrapping on loggers made with Logger.With.
func (h *TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &TraceHandler{inner: h.inner.WithAttrs(attrs)}
}

// WithGroup keeps the wrapping on grouped loggers.
func (h *TraceHandler) WithGroup(name string) slog.Handler {
	return &TraceHandler{inner: h.inner.WithGroup(name)}
}
