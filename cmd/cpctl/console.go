package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"cryptopill.dev/jobs/libs/jobs"
)

// `cpctl console`: the status report as a server-rendered page (html/template, inline SVG, no
// JavaScript), refreshed by the browser. Actions (retry, cancel a job; freeze a module) exist only
// with -actions, as POST forms carrying a per-process CSRF token that must match the SameSite
// cookie set with the page (double submit, compared in constant time).

//go:embed console.html
var consoleFS embed.FS

// consoleConfig configures the console server.
type consoleConfig struct {
	Sources statusSources
	Options statusOptions
	// Actions enables the POST actions.
	Actions bool
	// Refresh is the page's auto-refresh interval (0: none).
	Refresh time.Duration
	// Database and NATS are shown (credentials masked).
	Database, NATS string
	// FlagsURL is the NATS URL freeze actions connect with.
	FlagsURL string
	// AllowHosts are host names (besides IP literals and localhost) the page may be asked for.
	AllowHosts []string
	Logger     *slog.Logger
}

type consoleServer struct {
	cfg   consoleConfig
	tmpl  *template.Template
	token string
}

const csrfCookie = "cp_console_csrf"

func newConsole(cfg consoleConfig) (*consoleServer, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("console: csrf token: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tmpl, err := template.New("console.html").Funcs(consoleFuncs).ParseFS(consoleFS, "console.html")
	if err != nil {
		return nil, fmt.Errorf("console: template: %w", err)
	}
	return &consoleServer{cfg: cfg, tmpl: tmpl, token: hex.EncodeToString(b)}, nil
}

func (c *consoleServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.page)
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		rep := c.report(r.Context())
		w.Header().Set("Content-Type", "application/json")
		_ = printJSON(w, rep)
	})
	if c.cfg.Actions {
		mux.HandleFunc("POST /actions/{action}", c.action)
	}
	return c.sameHost(mux)
}

// sameHost refuses requests for a host name the console was not asked to serve, and POSTs
// from another origin: a page whose name is rebound to 127.0.0.1 (DNS rebinding) would
// otherwise be same-origin with the console and read its token. IP literals and localhost are
// served; other names only with -allow-host.
func (c *consoleServer) sameHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		ok := host == "localhost" || net.ParseIP(host) != nil || slices.Contains(c.cfg.AllowHosts, host)
		if ok && r.Method == http.MethodPost {
			if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
				ok = false
			}
		}
		if !ok {
			c.cfg.Logger.Warn("console: request refused: unexpected host or origin", "host", r.Host, "origin", r.Header.Get("Origin"), "path", r.URL.Path)
			http.Error(w, "forbidden: unexpected host or origin (cpctl console -allow-host NAME serves another name)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (c *consoleServer) report(ctx context.Context) *statusReport {
	r := gatherStatus(ctx, c.cfg.Sources, c.cfg.Options)
	r.Database, r.NATS = c.cfg.Database, c.cfg.NATS
	return r
}

type consolePage struct {
	R       *statusReport
	Actions bool
	Token   string
	Refresh int
	Message string
	Error   string
	MaxLag  int64
}

func (c *consoleServer) page(w http.ResponseWriter, r *http.Request) {
	p := consolePage{R: c.report(r.Context()), Actions: c.cfg.Actions, Refresh: int(c.cfg.Refresh / time.Second),
		Message: r.URL.Query().Get("done"), Error: r.URL.Query().Get("error"), MaxLag: c.cfg.Options.MaxSlotLag}
	if c.cfg.Actions {
		p.Token = c.token
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: c.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'")
	w.Header().Set("X-Frame-Options", "DENY")
	if err := c.tmpl.Execute(w, p); err != nil {
		c.cfg.Logger.Warn("console: render failed", "err", err)
	}
}

// checkCSRF accepts a form whose token and cookie both equal the process's token.
func (c *consoleServer) checkCSRF(r *http.Request) bool {
	cookie, err := r.Cookie(csrfCookie)
	if err != nil {
		return false
	}
	form := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(form), []byte(c.token)) == 1 &&
		subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(c.token)) == 1
}

func (c *consoleServer) action(w http.ResponseWriter, r *http.Request) {
	if !c.checkCSRF(r) {
		c.cfg.Logger.Warn("console: action refused: bad or missing CSRF token", "action", r.PathValue("action"), "remote", r.RemoteAddr)
		http.Error(w, "forbidden: bad or missing CSRF token (reload the page)", http.StatusForbidden)
		return
	}
	ctx := r.Context()
	action := r.PathValue("action")
	var (
		done string
		err  error
	)
	switch action {
	case "retry", "cancel":
		var id int64
		id, err = strconv.ParseInt(r.PostFormValue("id"), 10, 64)
		if err != nil {
			err = fmt.Errorf("%s: job id %q: want a number", action, r.PostFormValue("id"))
			break
		}
		if action == "retry" {
			err = jobs.Retry(ctx, c.cfg.Sources.Pool, id)
			done = fmt.Sprintf("job %d queued again", id)
		} else {
			var res jobs.CancelResult
			res, err = jobs.Cancel(ctx, c.cfg.Sources.Pool, id)
			done = fmt.Sprintf("job %d cancelled (was %s)", id, res.Was)
		}
	case "freeze", "unfreeze":
		module := r.PostFormValue("module")
		if err = checkModule(module); err != nil {
			break
		}
		kv, kerr := c.cfg.Sources.JS.KeyValue(ctx, c.cfg.Options.FlagsBucket)
		if kerr != nil {
			err = fmt.Errorf("%s: flags bucket %s: %w", action, c.cfg.Options.FlagsBucket, kerr)
			break
		}
		if action == "freeze" {
			_, err = freeze(ctx, c.cfg.Sources.Pool, kv, module, "console")
		} else {
			_, err = unfreeze(ctx, c.cfg.Sources.Pool, kv, module)
		}
		done = fmt.Sprintf("%s %s done", action, orAll(module))
	default:
		http.NotFound(w, r)
		return
	}
	q := url.Values{}
	if err != nil {
		c.cfg.Logger.Warn("console: action failed", "action", action, "err", err)
		q.Set("error", err.Error())
	} else {
		c.cfg.Logger.Info("console: action", "action", action, "result", done, "remote", r.RemoteAddr)
		q.Set("done", done)
	}
	http.Redirect(w, r, "/?"+q.Encode(), http.StatusSeeOther)
}

func orAll(module string) string {
	if module == "" {
		return "every module"
	}
	return module
}

// consoleFuncs are the template's helpers: ages, colours by age, bytes, the SVG geometry.
var consoleFuncs = template.FuncMap{
	"age": func(t *time.Time, now time.Time) string { return ageOf(t, now) },
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"dur": roundAge,
	"bytes": func(n *int64) string {
		return optBytes(n)
	},
	// ageClass colours an age against the stale threshold: fresh below a third of it, ageing
	// below it, stale beyond (and never).
	"ageClass": func(t *time.Time, now time.Time, threshold time.Duration) string {
		if t == nil {
			return "stale"
		}
		switch a := now.Sub(*t); {
		case a <= threshold/3:
			return "fresh"
		case a <= threshold:
			return "ageing"
		}
		return "stale"
	},
	"periodClass": func(p tickPeriod) string {
		switch {
		case p.Status == "skipped":
			return "skipped"
		case p.Failed+p.Abandoned > 0:
			return "failed"
		case p.Status == "planned":
			return "planned"
		}
		return "sampled"
	},
	// timeline lays the tick periods (newest first in the report) out oldest first.
	"timeline": func(ps []tickPeriod) []struct {
		X int
		P tickPeriod
	} {
		out := make([]struct {
			X int
			P tickPeriod
		}, len(ps))
		for i := range ps {
			out[i].P = ps[len(ps)-1-i]
			out[i].X = i * 14
		}
		return out
	},
	"timelineWidth": func(ps []tickPeriod) int { return max(len(ps)*14, 14) },
	// bar is a bar length in px out of width for v of max.
	"bar": func(v, maxV int64, width int) int {
		if maxV <= 0 || v <= 0 {
			return 0
		}
		return int(min(v, maxV) * int64(width) / maxV)
	},
	"queued": func(js []jobBacklog) []jobBacklog {
		var out []jobBacklog
		for _, j := range js {
			if j.Status == "queued" || j.Status == "running" || j.Status == "failed" {
				out = append(out, j)
			}
		}
		return out
	},
	"maxCount": func(js []jobBacklog) int64 {
		var m int64
		for _, j := range js {
			m = max(m, j.Count)
		}
		return m
	},
	"deref": func(n *int64) int64 {
		if n == nil {
			return 0
		}
		return *n
	},
	"mul":   func(a, b int) int { return a * b },
	"add":   func(a, b int) int { return a + b },
	"trunc": func(s string) string { return truncate(s, 120) },
	"upper": strings.ToUpper,
	"iec":   bytesIEC,
}

func runConsole(ctx context.Context, args []string) int {
	return consoleCommand(ctx, args, processEnv())
}

func consoleCommand(ctx context.Context, args []string, env cmdEnv) int {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprint(env.stderr, "usage: cpctl console [-addr 127.0.0.1:8095] [-actions] [-refresh 10s] [--database-url URL] [--nats-url URL]\n\n"+
			"Serves the status report as a web page: freshness grid, tick timeline, job backlog and runs, dead\n"+
			"letters, streams, relay slot lag. Read-only unless -actions (retry/cancel a job, freeze/unfreeze a\n"+
			"module, behind CSRF-checked forms). Listens on loopback by default. See docs/operations.md.\n\n")
		fs.PrintDefaults()
	}
	var conn connFlags
	conn.register(fs)
	addr := fs.String("addr", "127.0.0.1:8095", "listen address (loopback by default: the console has no login)")
	actions := fs.Bool("actions", false, "enable the repair actions (retry, cancel, freeze) as POST forms")
	refresh := fs.Duration("refresh", 10*time.Second, "page auto-refresh interval (0 disables)")
	allowHosts := fs.String("allow-host", "", "comma-separated host names the console may be reached by, besides IP addresses and localhost")
	if err := fs.Parse(args); err != nil {
		return flagStatus(err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return connStatus(env, "console", usageErrorf("unexpected arguments %q", fs.Args()))
	}
	src, closeSrc, dbURL, natsURL, err := openStatusSources(ctx, env, &conn)
	if err != nil {
		return connStatus(env, "console", err)
	}
	defer closeSrc()
	logger := slog.New(slog.NewJSONHandler(env.stderr, nil)).With("service", "cpctl-console")
	srv, ln, err := startConsole(consoleConfig{Sources: src, Options: defaultStatusOptions(), Actions: *actions,
		Refresh: *refresh, Database: dbURL, NATS: natsURL, Logger: logger, AllowHosts: splitList(*allowHosts)}, *addr)
	if err != nil {
		return connStatus(env, "console", usageErrorf("%v", err))
	}
	fmt.Fprintf(env.stdout, "console http://%s/ (actions %v)\n", ln.Addr(), *actions)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return exitHealthy
}

// startConsole listens on addr and serves the console until the returned server is shut down.
func startConsole(cfg consoleConfig, addr string) (*http.Server, net.Listener, error) {
	c, err := newConsole(cfg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("console: listen %s: %w", addr, err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !isLoopback(host) {
		cfg.Logger.Warn("console listens beyond loopback and has no login: put it behind an authenticating proxy", "addr", ln.Addr().String(), "actions", cfg.Actions)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("console: serve failed", "err", err)
		}
	}()
	return srv, ln, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
