package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/config"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestComposeFile loads compose.yaml with the compose-spec loader (as `docker compose` does) and
// checks that every service, image, dependency and variable the stack needs is there.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)

	want := []string{"nats", "postgres", "migrate", "pg-logins", "seed", "simex", "orchestrator", "straux", "cinimport", "seeder"}
	require.ElementsMatch(t, want, p.ServiceNames())

	for name, svc := range p.Services {
		require.NotEmpty(t, svc.Image, "service %s has no image", name)
		for dep := range svc.DependsOn {
			_, ok := p.Services[dep]
			require.True(t, ok, "service %s depends on unknown service %s", name, dep)
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeVolume {
				_, ok := p.Volumes[v.Source]
				require.True(t, ok, "service %s mounts undeclared volume %s", name, v.Source)
			}
		}
	}

	// The image our binaries run in is built from the repository's Dockerfile.
	mig := p.Services["migrate"]
	require.NotNil(t, mig.Build, "migrate builds the image")
	_, err := os.Stat(filepath.Join(mig.Build.Context, "Dockerfile"))
	require.NoError(t, err)
	for _, name := range projectServices {
		require.Equal(t, mig.Image, p.Services[name].Image, "%s runs the project image", name)
	}

	nats := p.Services["nats"]
	require.Equal(t, []string{"-c", "/etc/nats/nats.conf"}, []string(nats.Command), "nats runs the shipped configuration (JetStream in it)")
	require.NotNil(t, nats.HealthCheck)
	require.NotEmpty(t, nats.Volumes)

	pg := p.Services["postgres"]
	require.Contains(t, strings.Join(pg.Command, " "), "wal_level=logical")
	require.Contains(t, strings.Join(pg.Command, " "), "max_slot_wal_keep_size=", "a slot nobody reads must not fill the disk")
	require.NotNil(t, pg.HealthCheck)
	require.NotEmpty(t, pg.Volumes)
	require.Equal(t, types.ServiceConditionHealthy, p.Services["migrate"].DependsOn["postgres"].Condition)
	require.Equal(t, []string{"cpctl", "migrate", "up"}, []string(mig.Command))

	// Each service: waits for the migration and for NATS, serves health checks, has its variables.
	common := []string{"CP_ENV", "DATABASE_URL_FILE", "NATS_URL", "HTTP_ADDR"}
	own := map[string][]string{
		"orchestrator": {"RUN_JOBS", "STR_AUX_RUNNER_INTERVAL_MS", "STR_AUX_RUNNER_SESSION_ID", "CIN_IMPORT_INTERVAL_MS", "CDC_SLOT", "CDC_PUBLICATION"},
		"straux":       {"BINANCE_BASE_URL"},
		"cinimport":    {"BINANCE_BASE_URL", "BINANCE_API_KEY", "BINANCE_API_SECRET"},
		"seeder":       nil,
	}
	for name, vars := range own {
		svc := p.Services[name]
		require.Equal(t, []string{name}, []string(svc.Command))
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, svc.DependsOn["migrate"].Condition, name)
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, svc.DependsOn["pg-logins"].Condition, name)
		require.Equal(t, types.ServiceConditionHealthy, svc.DependsOn["nats"].Condition, name)
		require.NotNil(t, svc.HealthCheck, name)
		require.True(t, slices.Contains(svc.HealthCheck.Test, "http://127.0.0.1:8080/readyz"), name)
		for _, v := range append(slices.Clone(common), vars...) {
			val, ok := svc.Environment[v]
			require.True(t, ok && val != nil && *val != "", "service %s lacks %s", name, v)
		}
		require.Contains(t, composeSecret(t, p, name, "DATABASE_URL_FILE"), "@postgres:5432/", name)
		require.Equal(t, "nats://nats:4222", *svc.Environment["NATS_URL"], name)
	}
	require.Equal(t, "1", *p.Services["orchestrator"].Environment["RUN_JOBS"])
}

// loadCompose loads the repository's compose.yaml as `docker compose` does, with env as the only
// environment (not the test process's: a VERSION exported in the shell must not change the result).
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	return loadComposeProfiles(t, nil, env...)
}

func loadComposeProfiles(t *testing.T, profiles []string, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot(t), "compose.yaml")},
		cli.WithWorkingDirectory(repoRoot(t)), cli.WithName("cryptopill"), cli.WithEnv(env), cli.WithProfiles(profiles))
	require.NoError(t, err)
	p, err := opts.LoadProject(context.Background())
	require.NoError(t, err, "compose.yaml must load")
	return p
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	return root
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), name))
	require.NoError(t, err)
	return string(b)
}

// projectServices are the services that run the image built from this repository.
var projectServices = []string{"migrate", "pg-logins", "seed", "simex", "orchestrator", "straux", "cinimport", "seeder"}

// TestComposeStartsFirstTime checks what a first `docker compose up --build` on a clean machine
// needs (issue 11): no step that can race, pull what is not on a registry, or be killed mid-drain.
func TestComposeStartsFirstTime(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)

	t.Run("postgres healthy only over TCP", func(t *testing.T) {
		// The image's first init runs a server listening on the socket only; pg_isready without
		// -h reports it ready just before it is stopped, and migrate then fails to connect.
		hc := p.Services["postgres"].HealthCheck
		require.NotNil(t, hc)
		args := healthCheckArgs(t, hc.Test)
		require.Equal(t, "pg_isready", args[0], "postgres healthcheck: %q", hc.Test)
		host := slices.Index(args, "-h")
		require.True(t, host >= 0 && host+1 < len(args) && args[host+1] == "127.0.0.1",
			"postgres healthcheck must check TCP with -h 127.0.0.1: %q", hc.Test)
	})

	t.Run("one-shot steps retry and gate what follows", func(t *testing.T) {
		for _, name := range []string{"migrate", "pg-logins", "seed"} {
			restart := p.Services[name].Restart
			policy, max, ok := strings.Cut(restart, ":")
			n, err := strconv.Atoi(max)
			require.True(t, ok && policy == types.RestartPolicyOnFailure && err == nil && n > 0,
				"%s must retry a bounded number of times (restart: on-failure:N), has %q", name, restart)
		}
		for name, svc := range p.Services {
			for _, dep := range []string{"migrate", "pg-logins", "seed"} {
				if d, ok := svc.DependsOn[dep]; ok {
					require.Equal(t, types.ServiceConditionCompletedSuccessfully, d.Condition, "%s on %s", name, dep)
				}
			}
		}
		// As `make dev`: the seed is committed before the orchestrator starts publishing.
		require.Equal(t, types.ServiceConditionCompletedSuccessfully, p.Services["orchestrator"].DependsOn["seed"].Condition)
	})

	t.Run("long-running services restart", func(t *testing.T) {
		for _, name := range []string{"nats", "postgres", "simex", "orchestrator", "straux", "cinimport", "seeder"} {
			require.Equal(t, types.RestartPolicyUnlessStopped, p.Services[name].Restart, name)
		}
	})

	t.Run("stop grace covers the drain", func(t *testing.T) {
		const margin = 5 * time.Second
		for name, svc := range p.Services {
			// The grace the service itself reads from this environment (its default when unset).
			env := func(k string) (string, bool) {
				v, ok := svc.Environment[k]
				if !ok || v == nil {
					return "", false
				}
				return *v, true
			}
			l := config.NewLoader(env)
			grace := l.LoadCommon("").ShutdownGrace
			require.NotNil(t, svc.StopGracePeriod, "%s has no stop_grace_period (compose's default 10s kills a draining service)", name)
			require.GreaterOrEqual(t, time.Duration(*svc.StopGracePeriod), grace+margin,
				"%s: stop_grace_period below SHUTDOWN_GRACE %s + %s", name, grace, margin)
		}
	})

	t.Run("project image is built, never pulled", func(t *testing.T) {
		img := p.Services["migrate"].Image
		var builders []string
		for _, name := range projectServices {
			svc := p.Services[name]
			require.Equal(t, img, svc.Image, name)
			if svc.Build != nil {
				builders = append(builders, name)
				require.Equal(t, types.PullPolicyBuild, svc.PullPolicy, "%s builds the image on every up", name)
				continue
			}
			require.Equal(t, types.PullPolicyNever, svc.PullPolicy, "%s must not try to pull %s", name, img)
			// compose builds before it starts anything, but only for services in the project: every
			// user of the image must bring its builder along.
			require.True(t, dependsOn(p, name, "migrate"), "%s must depend on migrate, which builds %s", name, img)
		}
		require.Equal(t, []string{"migrate"}, builders, "one service builds the image")
	})

	t.Run("images pinned to what the tests run", func(t *testing.T) {
		require.Equal(t, "nats:"+strings.TrimPrefix(natsServerVersion(t), "v")+"-alpine", p.Services["nats"].Image,
			"nats is the nats-server the tests embed")
		require.Regexp(t, `^postgres:15\.[0-9]+$`, p.Services["postgres"].Image, "postgres is the tests' major 15, minor pinned")

		goVersion := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindStringSubmatch(readRepoFile(t, "go.work"))
		require.NotNil(t, goVersion, "go.work has a go directive")
		require.Regexp(t, `(?m)^FROM golang:`+regexp.QuoteMeta(goVersion[1])+`(\.[0-9]+)?-`, readRepoFile(t, "Dockerfile"),
			"the build image is go.work's Go %s", goVersion[1])
	})

	t.Run("Dockerfile caches where the golang image keeps them", func(t *testing.T) {
		df := readRepoFile(t, "Dockerfile")
		require.Contains(t, df, "--mount=type=cache,target=/go/pkg/mod", "module cache in the golang image's GOPATH")
		require.Contains(t, df, "--mount=type=cache,target=/root/.cache/go-build", "build cache in root's GOCACHE")
	})

	t.Run("images versioned from git", func(t *testing.T) {
		df := readRepoFile(t, "Dockerfile")
		require.Regexp(t, `(?m)^ARG VERSION=dev$`, df)
		require.Contains(t, df, "make build VERSION=${VERSION}")
		require.Contains(t, readRepoFile(t, "Makefile"), `LDFLAGS := -X cryptopill.dev/jobs/libs/service.version=$(VERSION)`)

		mig := p.Services["migrate"]
		require.NotNil(t, mig.Build.Args["VERSION"])
		require.Equal(t, "dev", *mig.Build.Args["VERSION"], "VERSION unset: dev")
		stamped := loadCompose(t, "VERSION=v1.2.3-4-gabcdef0-dirty").Services["migrate"]
		require.Equal(t, "v1.2.3-4-gabcdef0-dirty", *stamped.Build.Args["VERSION"])
		require.Equal(t, "cryptopill/jobs:v1.2.3-4-gabcdef0-dirty", stamped.Image, "the image is tagged with its version")
	})
}

// healthCheckArgs returns a healthcheck's command as arguments, from either the CMD or the
// CMD-SHELL form.
func healthCheckArgs(t *testing.T, test types.HealthCheckTest) []string {
	t.Helper()
	require.NotEmpty(t, test)
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		return strings.Fields(strings.Join(test[1:], " "))
	}
	t.Fatalf("healthcheck %q is neither CMD nor CMD-SHELL", test)
	return nil
}

// dependsOn reports whether service name depends on target, directly or through others.
func dependsOn(p *types.Project, name, target string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		for dep := range p.Services[n].DependsOn {
			if dep == target || walk(dep) {
				return true
			}
		}
		return false
	}
	return walk(name)
}

// natsServerVersion is the nats-server module this test binary embeds (cpctl requires it directly,
// as the tests' natstest does).
func natsServerVersion(t *testing.T) string {
	t.Helper()
	bi, ok := debug.ReadBuildInfo()
	require.True(t, ok)
	for _, m := range bi.Deps {
		if m.Path == "github.com/nats-io/nats-server/v2" {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	t.Fatal("nats-server is not in the build")
	return ""
}

// TestComposeObservabilityProfile checks `--profile observability`: Prometheus scrapes every
// service, Grafana has Prometheus and Jaeger as data sources, Jaeger takes OTLP/HTTP, and none of
// them starts without the profile.
func TestComposeObservabilityProfile(t *testing.T) {
	t.Parallel()
	observability := []string{"prometheus", "grafana", "jaeger"}
	for _, name := range observability {
		require.NotContains(t, loadCompose(t).ServiceNames(), name, "%s only runs with the profile", name)
	}
	p := loadComposeProfiles(t, []string{"observability"}, "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318")

	for _, name := range observability {
		svc, ok := p.Services[name]
		require.True(t, ok, name)
		require.Equal(t, []string{"observability"}, svc.Profiles, name)
		require.Regexp(t, `:v?[0-9]+\.[0-9]+\.[0-9]+$`, svc.Image, "%s image version pinned", name)
		require.Equal(t, types.RestartPolicyUnlessStopped, svc.Restart, name)
		require.NotNil(t, svc.StopGracePeriod, name)
	}

	// Every service is scraped by its compose name at the port of its HTTP_ADDR, in a job named
	// after it (as alerts select services by job).
	prom := p.Services["prometheus"]
	cfgFile := bindSource(t, prom, "/etc/prometheus/prometheus.yml")
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(cfgFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &cfg), cfgFile)
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
	}
	for name, svc := range p.Services {
		addr, ok := svc.Environment["HTTP_ADDR"]
		if !ok {
			continue
		}
		_, port, err := net.SplitHostPort(*addr)
		require.NoError(t, err, "%s HTTP_ADDR", name)
		require.Equal(t, []string{net.JoinHostPort(name, port)}, jobs[name], "prometheus job %s in %s", name, cfgFile)
	}

	// The shipped alert rules are mounted where the config's rule_files (relative to the
	// config file) finds them.
	rulesDir := bindSource(t, prom, "/etc/prometheus/rules")
	require.Equal(t, filepath.Join(repoRoot(t), "deploy", "prometheus", "rules"), rulesDir)
	require.Equal(t, []string{"rules/*.yml"}, cfg.RuleFiles)
	ruleFiles, err := filepath.Glob(filepath.Join(rulesDir, "*.yml"))
	require.NoError(t, err)
	require.NotEmpty(t, ruleFiles)

	// Grafana's data sources are the stack's Prometheus and Jaeger.
	dsFile := bindSource(t, p.Services["grafana"], "/etc/grafana/provisioning/datasources/cryptopill.yml")
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	b, err = os.ReadFile(dsFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &ds), dsFile)
	urls := map[string]string{}
	for _, d := range ds.Datasources {
		urls[d.Type] = d.URL
	}
	require.Equal(t, map[string]string{"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}, urls)

	// Grafana is provisioned with the shipped dashboards: the provider reads the directory
	// they are mounted at, and their panels query the provisioned Prometheus.
	providerFile := bindSource(t, p.Services["grafana"], "/etc/grafana/provisioning/dashboards/cryptopill.yml")
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	b, err = os.ReadFile(providerFile)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &providers), providerFile)
	require.Len(t, providers.Providers, 1)
	require.Equal(t, "file", providers.Providers[0].Type)
	dashDir := bindSource(t, p.Services["grafana"], providers.Providers[0].Options.Path)
	require.Equal(t, filepath.Join(repoRoot(t), "deploy", "grafana", "dashboards"), dashDir)
	dashboards, err := filepath.Glob(filepath.Join(dashDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, dashboards)
	uids := map[string]bool{}
	for _, d := range ds.Datasources {
		uids[d.UID] = true
	}
	for _, f := range dashboards {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var dash struct {
			Panels []struct {
				Title      string `json:"title"`
				Datasource *struct {
					UID string `json:"uid"`
				} `json:"datasource"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(b, &dash), f)
		for _, pn := range dash.Panels {
			if pn.Datasource != nil {
				require.True(t, uids[pn.Datasource.UID], "%s panel %q: data source %s is provisioned", f, pn.Title, pn.Datasource.UID)
			}
		}
	}
	require.True(t, publishes(p.Services["prometheus"], 9090) && publishes(p.Services["jaeger"], 16686))

	// Traces go to Jaeger's OTLP/HTTP receiver when asked for.
	require.True(t, publishes(p.Services["jaeger"], 4318), "jaeger receives OTLP/HTTP on 4318")
	for _, name := range []string{"orchestrator", "straux", "cinimport", "seeder"} {
		require.Equal(t, "http://jaeger:4318", *p.Services[name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"], name)
	}
}

// bindSource returns the host file that svc bind-mounts at target, checking that it exists.
func bindSource(t *testing.T, svc types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			_, err := os.Stat(v.Source)
			require.NoError(t, err, "%s mounts %s", svc.Name, v.Source)
			return v.Source
		}
	}
	t.Fatalf("%s mounts nothing at %s", svc.Name, target)
	return ""
}

// publishes reports whether svc's container port is reachable on the host's same port.
func publishes(svc types.ServiceConfig, port uint32) bool {
	return slices.ContainsFunc(svc.Ports, func(p types.ServicePortConfig) bool {
		return p.Target == port && p.Published == strconv.Itoa(int(port))
	})
}

// composeSecret returns the content of the secret file that service's variable (a _FILE
// variable naming /run/secrets/<name>) names: the secret must be mounted into the service and
// declared with a file.
func composeSecret(t *testing.T, p *types.Project, service, variable string) string {
	t.Helper()
	svc := p.Services[service]
	v, ok := svc.Environment[variable]
	require.True(t, ok && v != nil, "%s lacks %s", service, variable)
	name, ok := strings.CutPrefix(*v, "/run/secrets/")
	require.True(t, ok, "%s %s=%s: want a mounted secret /run/secrets/<name>", service, variable, *v)
	mounted := false
	for _, s := range svc.Secrets {
		mounted = mounted || s.Source == name && (s.Target == "" || s.Target == name || s.Target == "/run/secrets/"+name)
	}
	require.True(t, mounted, "%s does not mount secret %s", service, name)
	decl, ok := p.Secrets[name]
	require.True(t, ok, "secret %s is not declared", name)
	require.NotEmpty(t, decl.File, "secret %s comes from a file", name)
	b, err := os.ReadFile(decl.File)
	require.NoError(t, err)
	return strings.TrimSuffix(string(b), "\n")
}

// TestComposePostgresRoles: every service logs in to Postgres as its own role (migration 00016),
// from a mounted secret file; only the one-shot steps see the owner's URL, which no variable
// holds; pg-logins makes each service's login from the very file the service mounts.
func TestComposePostgresRoles(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, svc := range p.Services {
		for _, k := range []string{"DATABASE_URL", "CDC_DATABASE_URL", "POSTGRES_PASSWORD"} {
			_, ok := svc.Environment[k]
			require.False(t, ok, "%s sets %s: Postgres secrets come from files", name, k)
		}
	}

	owner := composeSecret(t, p, "migrate", "DATABASE_URL_FILE")
	require.Equal(t, owner, composeSecret(t, p, "seed", "DATABASE_URL_FILE"))
	require.Equal(t, owner, composeSecret(t, p, "pg-logins", "DATABASE_URL_FILE"))
	ownerUser, ownerPW, err := urlLogin(owner)
	require.NoError(t, err)
	require.Equal(t, *p.Services["postgres"].Environment["POSTGRES_USER"], ownerUser, "the owner is the image's superuser")
	require.Equal(t, ownerPW, composeSecret(t, p, "postgres", "POSTGRES_PASSWORD_FILE"))

	// The group each service's login must be in, and what pg-logins makes of its arguments.
	groups := map[string]string{"orchestrator": "cp_orchestrator", "straux": "cp_straux", "cinimport": "cp_cinimport", "seeder": "cp_seeder"}
	made := map[string]string{} // secret path → group
	pl := p.Services["pg-logins"]
	require.Equal(t, []string{"cpctl", "pg-logins"}, []string(pl.Command[:2]))
	for _, a := range pl.Command[2:] {
		group, path, ok := strings.Cut(a, "=")
		require.True(t, ok, a)
		made[path] = group
	}
	users := map[string]string{}
	for service, group := range groups {
		path := *p.Services[service].Environment["DATABASE_URL_FILE"]
		require.Equal(t, group, made[path], "pg-logins makes %s's login (%s) in %s", service, path, group)
		u := composeSecret(t, p, service, "DATABASE_URL_FILE")
		require.Equal(t, u, readSecretAt(t, p, "pg-logins", path), "pg-logins reads the file %s mounts", service)
		user, _, err := urlLogin(u)
		require.NoError(t, err, service)
		require.NotEqual(t, ownerUser, user, "%s must not log in as the owner", service)
		require.Contains(t, u, "@postgres:5432/cryptopill", service)
		users[user] = service
	}
	require.Len(t, users, len(groups), "one login per service")

	relay := *p.Services["orchestrator"].Environment["CDC_DATABASE_URL_FILE"]
	require.Equal(t, replicationRole, made[relay], "pg-logins sets the relay role's password")
	user, _, err := urlLogin(composeSecret(t, p, "orchestrator", "CDC_DATABASE_URL_FILE"))
	require.NoError(t, err)
	require.Equal(t, replicationRole, user, "the relay logs in as the REPLICATION role")
}

// readSecretAt returns the content of the secret mounted into service at path.
func readSecretAt(t *testing.T, p *types.Project, service, path string) string {
	t.Helper()
	name, ok := strings.CutPrefix(path, "/run/secrets/")
	require.True(t, ok, path)
	mounted := false
	for _, s := range p.Services[service].Secrets {
		mounted = mounted || s.Source == name
	}
	require.True(t, mounted, "%s does not mount %s", service, name)
	b, err := os.ReadFile(p.Secrets[name].File)
	require.NoError(t, err)
	return strings.TrimSuffix(string(b), "\n")
}
