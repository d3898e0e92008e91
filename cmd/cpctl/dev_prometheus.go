package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// devPrometheusConfig is what `cpctl dev` needs to run Prometheus beside the stack.
type devPrometheusConfig struct {
	// Port is where Prometheus listens on 127.0.0.1 (--prometheus-port, CP_DEV_PROMETHEUS_PORT).
	Port int
	// Rules is the directory of the shipped alert rules (deploy/prometheus/rules).
	Rules string
	// Interval is the scrape and rule evaluation interval: shorter than compose's 15 s, so an
	// alert's `for` is what an operator waits for on a laptop.
	Interval time.Duration
	// Binary is the prometheus executable; empty: looked up on PATH.
	Binary string
}

func addDevPrometheusFlags(fs *flag.FlagSet) *devPrometheusConfig {
	c := &devPrometheusConfig{Interval: 5 * time.Second}
	fs.IntVar(&c.Port, "prometheus-port", envInt("CP_DEV_PROMETHEUS_PORT", 9090),
		"Prometheus port, when a prometheus binary is on PATH (env CP_DEV_PROMETHEUS_PORT)")
	fs.StringVar(&c.Rules, "prometheus-rules", filepath.Join("deploy", "prometheus", "rules"),
		"directory of the alert rules Prometheus evaluates")
	return c
}

// promTarget is one scrape job: a service and its /metrics address.
type promTarget struct {
	Job  string
	Addr string
}

// devPrometheusTargets are the dev stack's services at their dev ports, named as compose's jobs
// (deploy/prometheus/prometheus.yml), so the shipped rules select them the same way.
func devPrometheusTargets() []promTarget {
	out := make([]promTarget, 0, len(devServices))
	for _, svc := range devServices {
		out = append(out, promTarget{Job: svc.name, Addr: fmt.Sprintf("127.0.0.1:%d", svc.http)})
	}
	return out
}

// prometheusConfig renders a Prometheus configuration scraping targets and evaluating every
// *.yml rule file in rulesDir (absolute; empty: no rules).
func prometheusConfig(targets []promTarget, rulesDir string, interval time.Duration) ([]byte, error) {
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `yaml:"job_name"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	cfg := struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles     []string       `yaml:"rule_files,omitempty"`
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
	}{}
	cfg.Global.ScrapeInterval = interval.String()
	cfg.Global.EvaluationInterval = interval.String()
	if rulesDir != "" {
		cfg.RuleFiles = []string{filepath.Join(rulesDir, "*.yml")}
	}
	for _, t := range targets {
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, scrapeConfig{JobName: t.Job, StaticConfigs: []staticConfig{{Targets: []string{t.Addr}}}})
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render prometheus config: %w", err)
	}
	return append([]byte("# written by `cpctl dev` at every start (cmd/cpctl/dev_prometheus.go); edits are overwritten\n"), b...), nil
}

// startPrometheus runs Prometheus over targets when a prometheus binary is installed: config
// and data in <data>/prometheus, log in <data>/logs/prometheus.log, restarted with the stack's
// other children. It returns the URL to print, or a line saying how to get Prometheus when
// there is none: the stack runs either way.
func (s *devStack) startPrometheus(ctx context.Context, cfg devPrometheusConfig, targets []promTarget) (string, error) {
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("prometheus"); err != nil {
			s.log.Info("prometheus not on PATH; the stack runs without it (install: apt-get install prometheus)")
			return "not installed (apt-get install prometheus, then restart make dev)", nil
		}
	}
	dir := filepath.Join(s.dataDir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return "", fmt.Errorf("prometheus: %w", err)
	}
	rules, err := filepath.Abs(cfg.Rules)
	if err == nil {
		_, err = os.Stat(rules)
	}
	if err != nil {
		// cpctl dev run from outside the repository: scrape anyway, say what is missing.
		s.log.Warn("alert rules not found; prometheus runs without them", "rules", cfg.Rules, "err", err)
		rules = ""
	}
	body, err := prometheusConfig(targets, rules, cfg.Interval)
	if err != nil {
		return "", err
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, body, 0o644); err != nil {
		return "", fmt.Errorf("prometheus: write config: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port))
	if err := s.start(ctx, "prometheus", bin, []string{
		"--config.file=" + cfgFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=7d",
		"--web.listen-address=" + addr,
		"--log.level=warn", // its own logs go to .data/logs/prometheus.log and the terminal
	}, nil); err != nil {
		return "", err
	}
	url := "http://" + addr
	if err := waitPrometheusReady(ctx, url, 30*time.Second); err != nil {
		return "", err
	}
	return url + "   alerts " + url + "/alerts   config " + cfgFile, nil
}

// waitPrometheusReady polls /-/ready until Prometheus has loaded its config and storage.
func waitPrometheusReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error = errors.New("no answer")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus at %s not ready (port in use? set CP_DEV_PROMETHEUS_PORT; log in .data/logs/prometheus.log): %w", url, last)
		case <-t.C:
		}
	}
}

// prometheusLine starts Prometheus for the dev stack (if configured and installed) and returns
// the banner's line for it. A Prometheus that fails to start is logged, not fatal: the stack
// is usable without it.
func (s *devStack) prometheusLine(ctx context.Context) string {
	if s.prom == nil {
		return "off"
	}
	line, err := s.startPrometheus(ctx, *s.prom, devPrometheusTargets())
	if err != nil {
		s.log.Error("prometheus did not start; the stack runs without it", "err", err)
		return "failed to start: " + err.Error()
	}
	return line
}
