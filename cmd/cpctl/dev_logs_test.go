package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/service"
)

func TestDevLogWriterRendersJSONLinesAsText(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	// out is no terminal: text without colour, which a test can read.
	w := newDevLogWriter(service.NewLogHandler(&out, service.LogFormatText, "debug"), &out)
	in := `{"time":"2026-12-01T21:00:00.5Z","level":"WARN","msg":"tick skipped","service":"straux","module":"str-aux","n":42,"period":40000000000,"err":{"code":-1003}}` + "\n" +
		"panic: not json\n" +
		`{"time":"2026-12-01T21:00:01Z","level":"INFO","msg":"started","pid":7}` + "\n"
	// The child's output arrives in arbitrary pieces.
	for _, part := range []string{in[:17], in[17:150], in[150:]} {
		_, err := w.Write([]byte(part))
		require.NoError(t, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	require.Equal(t, `21:00:00 WRN tick skipped service=straux module=str-aux n=42 period=40000000000 err="{\"code\":-1003}"`, lines[0])
	require.Equal(t, "panic: not json", lines[1])
	require.Equal(t, "21:00:01 INF started pid=7", lines[2])
}

func TestLogHandlerFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ format, want string }{
		{"", `{"time":`}, {"json", `{"time":`}, {"bogus", `{"time":`},
		{"auto", `{"time":`}, // a buffer is no terminal
		{"text", "INF hello k=v"},
	} {
		var out bytes.Buffer
		h := service.NewLogHandler(&out, tc.format, "info")
		require.NoError(t, h.WithAttrs(nil).Handle(t.Context(), newTestRecord()))
		require.Contains(t, out.String(), tc.want, "LOG_FORMAT=%q", tc.format)
	}
}

func newTestRecord() slog.Record {
	r := slog.NewRecord(time.Date(2026, 12, 1, 21, 0, 0, 0, time.UTC), slog.LevelInfo, "hello", 0)
	r.AddAttrs(slog.String("k", "v"))
	return r
}
