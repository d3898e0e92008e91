package metrictest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// UpdateEnv names the environment variable that makes [CheckExposition] rewrite the metric
// lists under deploy/metrics/ from what the services export (CP_UPDATE_METRICS=1 go test ...).
const UpdateEnv = "CP_UPDATE_METRICS"

// Scrape fetches a running service's /metrics (addr is host:port) in the text format.
func Scrape(t testing.TB, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrictest: scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrictest: scrape %s: status %d, %v", addr, resp.StatusCode, err)
	}
	return body
}

// SeriesNames returns the names PromQL can select in a text exposition: each family's name,
// for histograms and summaries the _bucket, _sum and _count series instead.
func SeriesNames(t testing.TB, exposition []byte) []string {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(exposition))
	if err != nil {
		t.Fatalf("metrictest: parse exposition: %v", err)
	}
	var out []string
	for name, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out = append(out, name+"_bucket", name+"_sum", name+"_count")
		case dto.MetricType_SUMMARY:
			out = append(out, name, name+"_sum", name+"_count")
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// CheckExposition lints a service's /metrics with the Prometheus client's promlint (names,
// units, counters' _total, help texts) and checks that every cp_ series listed in list (a file
// under deploy/metrics/, one name a line) is exported: dashboards and alert rules are checked
// against those lists, so a renamed or dropped metric fails here. With CP_UPDATE_METRICS=1 the
// list is rewritten from the exposition instead.
func CheckExposition(t testing.TB, exposition []byte, list string) {
	t.Helper()
	l := promlint.New(bytes.NewReader(exposition))
	l.AddCustomValidations(Conventions)
	problems, err := l.Lint()
	if err != nil {
		t.Fatalf("metrictest: lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metrictest: lint %s: %s", p.Metric, p.Text)
	}
	var exported []string
	for _, n := range SeriesNames(t, exposition) {
		if strings.HasPrefix(n, "cp_") {
			exported = append(exported, n)
		}
	}
	if os.Getenv(UpdateEnv) == "1" {
		if err := os.MkdirAll(filepath.Dir(list), 0o755); err != nil {
			t.Fatalf("metrictest: %v", err)
		}
		header := "# Series the service exports, checked by its end-to-end test (metrictest.CheckExposition);\n" +
			"# dashboards and alert rules may name only these. Regenerate: CP_UPDATE_METRICS=1 go test -run <its test>.\n"
		if err := os.WriteFile(list, []byte(header+strings.Join(exported, "\n")+"\n"), 0o644); err != nil {
			t.Fatalf("metrictest: %v", err)
		}
		return
	}
	want, err := ReadList(list)
	if err != nil {
		t.Fatalf("metrictest: %v", err)
	}
	for _, n := range want {
		if !slices.Contains(exported, n) {
			t.Errorf("metrictest: %s lists %s, which the service does not export (renamed? regenerate with %s=1)", list, n, UpdateEnv)
		}
	}
	for _, n := range exported {
		if !slices.Contains(want, n) {
			t.Logf("metrictest: %s exported but not listed in %s (add it to use it in a dashboard or rule)", n, list)
		}
	}
}

// Conventions is the project's naming rules on top of promlint's: one cp_ prefix for the
// project's own metrics (go_, process_ and promhttp_ are the client library's), and a gauge of
// a point in time (its help says Unix seconds) named _timestamp_seconds.
func Conventions(mf *dto.MetricFamily) []error {
	name := mf.GetName()
	var errs []error
	if !strings.HasPrefix(name, "cp_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") &&
		!strings.HasPrefix(name, "promhttp_") {
		errs = append(errs, fmt.Errorf("not prefixed cp_"))
	}
	if strings.Contains(mf.GetHelp(), "Unix seconds") && !strings.HasSuffix(name, "_timestamp_seconds") {
		errs = append(errs, fmt.Errorf("a point in time (Unix seconds) should be named _timestamp_seconds"))
	}
	return errs
}

// ReadList reads a metric list written by CheckExposition: one name a line, # comments.
func ReadList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read metric list: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, nil
}
