package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/logtest"
	"cryptopill.dev/jobs/libs/testkit/otlptest"
)

// runTraced starts a service frame (no Postgres, NATS or HTTP) with the process environment's
// OTEL_* variables, makes one span and logs inside it, and returns what the frame logged and
// the span's context. Start returning has flushed the exporter.
func runTraced(t *testing.T) (string, trace.SpanContext) {
	t.Helper()
	l := config.NewLoader(nil)
	tracing := l.LoadTracing()
	require.NoError(t, l.Err())
	var logs logtest.Buffer
	var sc trace.SpanContext
	err := service.Start(context.Background(), service.Options{
		Name:       "straux",
		Common:     config.Common{Env: config.EnvStaging, Tracing: tracing},
		NoDatabase: true, NoNATS: true, NoHTTP: true,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}, func(ctx context.Context, p *service.Process) error {
		ctx, span := p.TracerProvider.Tracer("test").Start(ctx, "work")
		defer span.End()
		sc = span.SpanContext()
		p.Logger.InfoContext(ctx, "inside the span")
		p.Logger.Info("no context")
		return nil
	})
	require.NoError(t, err)
	return logs.String(), sc
}

// The spec-standard OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: spans go to <base>/v1/traces (the
// hand-rolled WithEndpointURL posted them to / and nothing was exported), and the resource says
// which service, version, environment and replica sent them, with OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME applied over it.
func TestTracesExportToTheStandardEndpoint(t *testing.T) {
	rx := otlptest.New(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.URL)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "team=data,deployment.region=eu")
	runTraced(t)

	require.Equal(t, []string{"/v1/traces"}, rx.Paths())
	spans := rx.Spans()
	require.Len(t, spans, 1)
	res := spans[0].Resource
	require.Equal(t, "straux", res["service.name"])
	require.Equal(t, service.Version(), res["service.version"])
	require.Equal(t, "staging", res["deployment.environment.name"])
	require.NotEmpty(t, res["service.instance.id"])
	require.Equal(t, "data", res["team"])
	require.Equal(t, "eu", res["deployment.region"])

	rx2 := otlptest.New(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", rx2.URL+"/collector/traces")
	t.Setenv("OTEL_SERVICE_NAME", "straux-canary")
	runTraced(t)
	require.Equal(t, []string{"/collector/traces"}, rx2.Paths(), "the traces endpoint is used as it is")
	require.Equal(t, "straux-canary", rx2.Spans()[0].Service)
}

// OTEL_SDK_DISABLED=true records nothing and exports nothing.
func TestTracesOffWhenSDKDisabled(t *testing.T) {
	rx := otlptest.New(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.URL)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	_, sc := runTraced(t)
	require.False(t, sc.IsSampled())
	require.Empty(t, rx.Paths())
}

// A line logged with a context inside a span carries the span's trace_id and span_id; a line
// without one carries neither.
func TestLogLinesInsideASpanCarryItsIDs(t *testing.T) {
	logs, sc := runTraced(t)
	var inside, outside map[string]any
	sc2 := bufio.NewScanner(strings.NewReader(logs))
	for sc2.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc2.Bytes(), &line))
		switch line["msg"] {
		case "inside the span":
			inside = line
		case "no context":
			outside = line
		}
	}
	require.NotNil(t, inside, logs)
	require.Equal(t, sc.TraceID().String(), inside["trace_id"])
	require.Equal(t, sc.SpanID().String(), inside["span_id"])
	require.NotContains(t, outside, "trace_id")
}

// NewLogger's handler and one handed in are wrapped once, whatever base handler they use, and
// the wrapping survives With.
func TestTraceHandlerWrapsOnce(t *testing.T) {
	t.Parallel()
	l := service.WithTraceIDs(service.NewLogger("info"))
	_, ok := l.Handler().(*service.TraceHandler)
	require.True(t, ok)
	require.Same(t, l, service.WithTraceIDs(l))
	_, ok = l.With("k", "v").Handler().(*service.TraceHandler)
	require.True(t, ok)
}
