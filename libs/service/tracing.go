package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"cryptopill.dev/jobs/libs/config"
)

// tracing is a process's tracer provider and how to flush it at shutdown.
type tracing struct {
	provider trace.TracerProvider
	shutdown func(context.Context) error
}

// setupTracing installs the process's tracer provider and the W3C trace-context propagator.
//
// The OTEL_* variables are read by the SDK itself, as the specification defines them:
// OTEL_EXPORTER_OTLP_ENDPOINT is a base URL the exporter appends /v1/traces to,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is, OTEL_TRACES_SAMPLER(_ARG) picks the
// sampler, OTEL_BSP_* tune the batcher, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
// the resource built here. cfg (validated by config.LoadTracing) only says whether to export at
// all and whether the SDK is disabled. Without export, spans are still created and propagated in
// traceparent headers, so a collector added later sees whole traces.
//
// The provider is also installed as otel's global one: the contrib instrumentation (pgx, HTTP
// client) and the events package default to it.
func setupTracing(ctx context.Context, name string, env config.Env, cfg config.Tracing, logger *slog.Logger, reg prometheus.Registerer) (*tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if cfg.Disabled {
		// OTEL_SDK_DISABLED: the Go SDK does not read it itself. A no-op provider records nothing;
		// a consumer's span still carries the incoming trace context on to what it publishes.
		tp := noop.NewTracerProvider()
		otel.SetTracerProvider(tp)
		logger.Info("tracing disabled by OTEL_SDK_DISABLED")
		return &tracing{provider: tp, shutdown: func(context.Context) error { return nil }}, nil
	}
	res, err := traceResource(ctx, name, env)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.Export {
		// No endpoint option: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, headers,
		// timeout, compression and TLS settings from the environment.
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT): %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	// A failed export (collector down, refused) is reported by the SDK to otel's error handler:
	// counted and logged here, never fatal.
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cp_trace_export_errors_total",
		Help: "Errors the OpenTelemetry SDK reported, mostly failed span exports to the OTLP endpoint.",
	})
	if err := reg.Register(failures); err != nil {
		return nil, fmt.Errorf("register trace export metric: %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		failures.Inc()
		logger.Warn("opentelemetry error (spans may be lost)", "err", err)
	}))
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return &tracing{provider: tp, shutdown: tp.Shutdown}, nil
}

// traceResource describes this replica: service name and version, deployment environment, and
// an instance id (host and pid) telling replicas apart. OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES, merged last, override any of them.
func traceResource(ctx context.Context, name string, env config.Env) (*resource.Resource, error) {
	host, _ := os.Hostname()
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(
			semconv.ServiceName(name),
			semconv.ServiceVersion(Version()),
			semconv.ServiceInstanceID(host+":"+strconv.Itoa(os.Getpid())),
			semconv.DeploymentEnvironmentNameKey.String(string(env)),
			// The pre-1.27 key, still what many trace viewers filter on.
			attribute.String("deployment.environment", string(env)),
		),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(),
	)
	if err != nil {
		// A partial resource (an OTEL_RESOURCE_ATTRIBUTES pair that does not parse) is refused
		// too: config.LoadTracing catches it earlier for the services.
		return nil, fmt.Errorf("trace resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}
