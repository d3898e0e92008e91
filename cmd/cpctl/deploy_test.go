package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"cryptopill.dev/jobs/libs/testkit/metrictest"
)

// synthetic are the series Prometheus makes itself: they are in no service's /metrics.
var synthetic = []string{"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

// exportedSeries is every series name the services export, as their end-to-end tests saw them
// on /metrics (deploy/metrics/*.txt, kept true by metrictest.CheckExposition).
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	lists, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "metrics", "*.txt"))
	require.NoError(t, err)
	require.Len(t, lists, 4, "one list per service")
	out := map[string]bool{}
	for _, l := range lists {
		names, err := metrictest.ReadList(l)
		require.NoError(t, err)
		require.NotEmpty(t, names, l)
		for _, n := range names {
			out[n] = true
		}
	}
	for _, n := range synthetic {
		out[n] = true
	}
	return out
}

// metricNames returns the metric names a PromQL expression selects. Grafana's interval
// variables are replaced by a duration first, as Grafana does before sending the query.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	for _, v := range []string{"$__rate_interval", "$__interval", "$__range"} {
		expr = strings.ReplaceAll(expr, v, "5m")
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, "%s: %s", where, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		require.NotEmpty(t, name, "%s: a selector without a metric name: %s", where, vs)
		names = append(names, name)
		return nil
	})
	return names
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// deployQueries returns every PromQL expression shipped under deploy/: the alert rules', the
// dashboards' panel queries, and the series the rule tests feed in (which must be real too, or
// a test would prove a rule over a metric nobody exports).
func deployQueries(t *testing.T) map[string]string {
	t.Helper()
	root := repoRoot(t)
	out := map[string]string{}
	rules, err := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "rules", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, rules)
	for _, f := range rules {
		var rf ruleFile
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &rf), f)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				out[filepath.Base(f)+" "+g.Name+"/"+r.Alert+r.Record] = r.Expr
			}
		}
	}
	tests, err := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "tests", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	for _, f := range tests {
		var tf struct {
			Tests []struct {
				InputSeries []struct {
					Series string `yaml:"series"`
				} `yaml:"input_series"`
			} `yaml:"tests"`
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, yaml.Unmarshal(b, &tf), f)
		for i, tc := range tf.Tests {
			for _, s := range tc.InputSeries {
				out[filepath.Base(f)+" test "+string(rune('0'+i))+" series "+s.Series] = s.Series
			}
		}
	}
	dashboards, err := filepath.Glob(filepath.Join(root, "deploy", "grafana", "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, dashboards)
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var d struct {
			UID    string  `json:"uid"`
			Panels []panel `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(b, &d), f)
		require.NotEmpty(t, d.UID, "%s has a uid (links to it survive re-provisioning)", f)
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				for _, tg := range p.Targets {
					out[filepath.Base(f)+" panel "+p.Title+" "+tg.RefID] = tg.Expr
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	return out
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

// TestDeployQueries: every query the shipped alert rules and dashboards hold parses and names
// only metrics the services export.
func TestDeployQueries(t *testing.T) {
	t.Parallel()
	exported := exportedSeries(t)
	queries := deployQueries(t)
	require.Greater(t, len(queries), 40)
	var unknown []string
	for where, q := range queries {
		require.NotEmpty(t, q, where)
		for _, n := range metricNames(t, where, q) {
			if !exported[n] {
				unknown = append(unknown, where+": "+n)
			}
		}
	}
	slices.Sort(unknown)
	require.Empty(t, unknown, "metrics no service exports (deploy/metrics/*.txt)")
}

// TestMetricNamesOfAQuery: the check sees every selector, histogram series and __name__
// matchers included, and refuses one that names no metric.
func TestMetricNamesOfAQuery(t *testing.T) {
	t.Parallel()
	got := metricNames(t, "test", `histogram_quantile(0.95, sum by (le) (rate(cp_a_seconds_bucket[$__rate_interval])))
		/ on () group_left {__name__="cp_b"} unless cp_c offset 5m`)
	require.Equal(t, []string{"cp_a_seconds_bucket", "cp_b", "cp_c"}, got)
}

// promtool runs Prometheus' promtool (Debian's prometheus package; .ci/run installs it).
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: apt-get install prometheus (it checks and unit-tests deploy/prometheus): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// TestPrometheusRules checks the alert rules and runs their unit tests (promtool test rules):
// each alert fires on the failure it names and stays quiet on a healthy stack.
func TestPrometheusRules(t *testing.T) {
	t.Parallel()
	rules, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "prometheus", "rules", "*.yml"))
	require.NoError(t, err)
	tests, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "prometheus", "tests", "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, tests)
	promtool(t, append([]string{"check", "rules"}, rules...)...)
	out := promtool(t, append([]string{"test", "rules"}, tests...)...)
	require.Contains(t, out, "SUCCESS")

	// Every alert has a unit test.
	var rf ruleFile
	b, err := os.ReadFile(rules[0])
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &rf))
	var testText strings.Builder
	for _, f := range tests {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		testText.Write(b)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				require.Contains(t, testText.String(), "alertname: "+r.Alert+"\n", "alert %s has a unit test", r.Alert)
			}
		}
	}
}

// TestPrometheusConfig: the compose stack's Prometheus config is valid, with its rules.
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	out := promtool(t, "check", "config", filepath.Join("deploy", "prometheus", "prometheus.yml"))
	require.Contains(t, out, "rule files found")
}

// TestDocsNameRealMetrics: every metric the docs and READMEs name is one the code declares, so
// a rename that forgets a doc fails here.
func TestDocsNameRealMetrics(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	literal := regexp.MustCompile(`"(cp_[a-z0-9_]+)"`)
	declared := map[string]bool{}
	for _, dir := range []string{"libs", "services"} {
		require.NoError(t, filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
				declared[m[1]] = true
			}
			return nil
		}))
	}
	require.True(t, declared["cp_build_info"], "the scan finds metric names")

	// Tokens shaped like this project's metrics (not slot, publication or header names).
	metric := regexp.MustCompile(`\bcp_(?:build|events|jobs|straux|relay|orchestrator|cinimport|postgres|exchange|topology)_[a-z0-9_]*[a-z0-9]\b`)
	// And the names from before the one cp_ prefix.
	unprefixed := regexp.MustCompile(`(?:^|[^a-z0-9_])((?:straux|cinimport)_[a-z0-9_]*_(?:total|seconds|ratio|weight|rounds|symbols))\b`)
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	readmes, err := filepath.Glob(filepath.Join(root, "services", "*", "README.md"))
	require.NoError(t, err)
	var unknown []string
	for _, f := range append(append(docs, filepath.Join(root, "README.md")), readmes...) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range unprefixed.FindAllStringSubmatch(string(b), -1) {
			unknown = append(unknown, strings.TrimPrefix(f, root+"/")+": "+m[1]+" (no cp_ prefix)")
		}
		for _, name := range metric.FindAllString(string(b), -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(name, suffix); ok && declared[s] {
					base = s
				}
			}
			if !declared[base] {
				unknown = append(unknown, strings.TrimPrefix(f, root+"/")+": "+name)
			}
		}
	}
	slices.Sort(unknown)
	require.Empty(t, slices.Compact(unknown), "metrics the docs name that the code does not declare")
}
