package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"time"

	"cryptopill.dev/jobs/libs/service"
)

// The services log JSON (their files under .data/logs stay JSON for jq and log shippers). On a
// terminal `cpctl dev` shows the same records as readable, coloured lines instead: each child's
// output passes through a devLogWriter on its way to the terminal.

// devConsole is where a child's output goes on its way to cpctl's stderr: re-rendered as text when
// stderr is a terminal and LOG_FORMAT does not ask for JSON, else as it is.
func devConsole() io.Writer {
	if !service.IsTerminal(os.Stderr) || os.Getenv("LOG_FORMAT") == service.LogFormatJSON {
		return os.Stderr
	}
	return newDevLogWriter(service.NewLogHandler(os.Stderr, service.LogFormatText, "debug"), os.Stderr)
}

// devLogWriter re-renders each JSON log line written to it as a record of h; a line that is not a
// JSON object (a panic, a child's own text) is copied to raw as it is.
type devLogWriter struct {
	h   slog.Handler
	raw io.Writer
	buf []byte
}

// devLogMaxLine bounds what a line without a newline may buffer before it is copied out raw.
const devLogMaxLine = 1 << 20

func newDevLogWriter(h slog.Handler, raw io.Writer) *devLogWriter {
	return &devLogWriter{h: h, raw: raw}
}

// Write takes any split of the child's output; exec calls it from one goroutine per child.
func (w *devLogWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > devLogMaxLine {
		w.line(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

func (w *devLogWriter) line(line []byte) {
	rec, ok := parseLogRecord(line)
	if ok && w.h.Handle(context.Background(), rec) == nil {
		return
	}
	_, _ = w.raw.Write(line)
}

// parseLogRecord reads one slog JSON line back into a record, keeping its attributes' order.
// Nested objects stay their compact JSON text: a dev console line shows them whole.
func parseLogRecord(line []byte) (slog.Record, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return slog.Record{}, false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return slog.Record{}, false
	}
	var (
		when  time.Time
		level slog.Level
		msg   string
		attrs []slog.Attr
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return slog.Record{}, false
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return slog.Record{}, false
		}
		// Numbers stay as written: a duration in nanoseconds is not 4e+10.
		var v any
		vd := json.NewDecoder(bytes.NewReader(raw))
		vd.UseNumber()
		if err := vd.Decode(&v); err != nil {
			return slog.Record{}, false
		}
		s, isString := v.(string)
		switch {
		case key == slog.TimeKey && isString:
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				when = t
				continue
			}
		case key == slog.LevelKey && isString:
			if level.UnmarshalText([]byte(s)) == nil {
				continue
			}
		case key == slog.MessageKey && isString:
			msg = s
			continue
		}
		switch v.(type) {
		case map[string]any, []any:
			var b bytes.Buffer
			_ = json.Compact(&b, raw)
			attrs = append(attrs, slog.String(key, b.String()))
		case json.Number:
			attrs = append(attrs, slog.String(key, string(v.(json.Number))))
		default:
			attrs = append(attrs, slog.Any(key, v))
		}
	}
	rec := slog.NewRecord(when, level, msg, 0)
	rec.AddAttrs(attrs...)
	return rec, true
}
