package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestDevPrometheusConfig: the config `cpctl dev` writes scrapes every dev service at its dev
// port under compose's job names, loads the shipped rules, and promtool accepts it.
func TestDevPrometheusConfig(t *testing.T) {
	t.Parallel()
	rules := filepath.Join(repoRoot(t), "deploy", "prometheus", "rules")
	body, err := prometheusConfig(devPrometheusTargets(), rules, 5*time.Second)
	require.NoError(t, err)
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(body, &cfg))
	require.Equal(t, []string{filepath.Join(rules, "*.yml")}, cfg.RuleFiles)
	jobs := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = sc.StaticConfigs[0].Targets[0]
	}
	require.Equal(t, map[string]string{"orchestrator": "127.0.0.1:9101", "straux": "127.0.0.1:9102",
		"cinimport": "127.0.0.1:9103", "seeder": "127.0.0.1:9104"}, jobs)

	f := filepath.Join(t.TempDir(), "prometheus.yml")
	require.NoError(t, os.WriteFile(f, body, 0o644))
	require.Contains(t, promtool(t, "check", "config", f), "SUCCESS")
}

// TestDevWithoutPrometheus: no prometheus binary on PATH is not an error; the banner says how
// to get one.
func TestDevWithoutPrometheus(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var logs bytes.Buffer
	s := &devStack{log: slog.New(slog.NewTextHandler(&logs, nil)), dataDir: t.TempDir()}
	line, err := s.startPrometheus(context.Background(), devPrometheusConfig{Port: 1, Rules: "deploy/prometheus/rules", Interval: time.Second}, devPrometheusTargets())
	require.NoError(t, err)
	require.Contains(t, line, "apt-get install prometheus")
	require.Contains(t, logs.String(), "apt-get install prometheus")
	require.Empty(t, s.children, "nothing started")
}

// TestDevPrometheusScrapesAndEvaluates runs the installed Prometheus as `cpctl dev` does, over
// a /metrics endpoint: it becomes ready, scrapes the target up and has loaded the shipped rules.
func TestDevPrometheusScrapesAndEvaluates(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found: apt-get install prometheus (.ci/run installs it): %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cp_test_up", Help: "1."}, func() float64 { return 1 }))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	data := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(data, "logs"), 0o755))
	s := &devStack{log: slog.New(slog.NewTextHandler(t.Output(), nil)), dataDir: data}
	t.Cleanup(s.down)
	port := freePort(t)
	line, err := s.startPrometheus(context.Background(), devPrometheusConfig{Port: port, Binary: bin, Interval: time.Second,
		Rules: filepath.Join(repoRoot(t), "deploy", "prometheus", "rules")},
		[]promTarget{{Job: "straux", Addr: strings.TrimPrefix(srv.URL, "http://")}})
	require.NoError(t, err)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	require.True(t, strings.HasPrefix(line, url), line)

	// The shipped rule groups are loaded.
	var rules struct {
		Data struct {
			Groups []struct {
				Name string `json:"name"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, url+"/api/v1/rules", &rules)
	var groups []string
	for _, g := range rules.Data.Groups {
		groups = append(groups, g.Name)
	}
	require.Contains(t, groups, "cryptopill-services")
	require.Contains(t, groups, "cryptopill-ticks")

	// The target is scraped: up.
	require.Eventually(t, func() bool {
		var targets struct {
			Data struct {
				ActiveTargets []struct {
					Labels map[string]string `json:"labels"`
					Health string            `json:"health"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		getJSON(t, url+"/api/v1/targets", &targets)
		for _, tg := range targets.Data.ActiveTargets {
			if tg.Labels["job"] == "straux" && tg.Health == "up" {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "prometheus scrapes the target")
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v), url)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
