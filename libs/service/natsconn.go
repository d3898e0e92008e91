package service

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/natsauth"
)

// Kinds of NATS client errors (cp_nats_errors_total).
const (
	natsErrPermission = "permission"
	natsErrAuth       = "auth"
	natsErrOther      = "other"
)

// connectNATS connects as the service's own identity (common.NATS). A server that refuses the
// identity is a start failure naming the server and the method, not a silent reconnect loop;
// a server that is not reachable yet is retried in the background. Asynchronous errors (a
// publish or subscribe the server's permissions refuse, a lost authorization) are logged and
// counted, because nats.go reports them nowhere else.
func connectNATS(name string, common config.Common, logger *slog.Logger, reg prometheus.Registerer) (*nats.Conn, error) {
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cp_nats_errors_total",
		Help: "Errors the NATS server sent this process, by kind: permission (a publish or subscribe its permissions refuse), auth (authentication refused or expired), other."},
		[]string{"kind"})
	for _, k := range []string{natsErrPermission, natsErrAuth, natsErrOther} {
		errs.WithLabelValues(k)
	}
	if err := reg.Register(errs); err != nil {
		return nil, fmt.Errorf("register cp_nats_errors_total: %w", err)
	}
	auth, err := NATSOptions(name, common)
	if err != nil {
		return nil, err
	}
	safeURL := config.SafeNATSURL(common.NATSURL)
	opts := append(auth,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Drain/Close at shutdown
				logger.Warn("nats disconnected; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if isAuthError(err) {
				errs.WithLabelValues(natsErrAuth).Inc()
				logger.Error("nats refused this identity on reconnect", "nats_auth", common.NATS, "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			kind := natsErrOther
			switch {
			case errors.Is(err, nats.ErrPermissionViolation):
				kind = natsErrPermission
			case isAuthError(err):
				kind = natsErrAuth
			}
			errs.WithLabelValues(kind).Inc()
			attrs := []any{"kind", kind, "nats_auth", common.NATS, "err", err}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			logger.Error("nats error", attrs...)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if err := nc.LastError(); err != nil {
				logger.Error("nats connection closed", "err", err)
			}
		}),
	)
	// First attempt without background retries: refused credentials end the start here.
	nc, err := nats.Connect(common.NATSURL, opts...)
	switch {
	case err == nil:
		return nc, nil
	case isAuthError(err):
		errs.WithLabelValues(natsErrAuth).Inc()
		return nil, fmt.Errorf("connect nats %s as %s: %w", safeURL, common.NATS, err)
	}
	logger.Warn("nats not reachable yet; retrying in the background", "nats", safeURL, "err", err)
	nc, err = nats.Connect(common.NATSURL, append(opts, nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, fmt.Errorf("connect nats %s as %s: %w", safeURL, common.NATS, err)
	}
	return nc, nil
}

// NATSOptions are the options every connection of service's processes uses: its name, its
// identity (common.NATS) and its own inbox prefix, the only replies its permissions let it
// subscribe to (natsauth.InboxPrefix).
func NATSOptions(service string, common config.Common) ([]nats.Option, error) {
	auth, err := common.NATS.Options()
	if err != nil {
		return nil, err
	}
	return append(auth, nats.Name(service), nats.CustomInboxPrefix(natsauth.InboxPrefix(service))), nil
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrNkeysNotSupported)
}
