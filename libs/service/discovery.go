package service

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"cryptopill.dev/jobs/libs/config"
)

// OpsSubjectPrefix is the root of every service's operator endpoints: cp.ops.<service>.<endpoint>
// (e.g. cp.ops.straux.replay). Requests go to one replica (the micro queue group); the NATS
// services API's own $SRV.PING|INFO|STATS subjects list every replica.
const OpsSubjectPrefix = "cp.ops"

// Metadata keys each replica registers with the NATS services API (`nats micro info <service>`).
const (
	MetaVersion   = "version"
	MetaSessionID = "session_id"
	MetaHost      = "host"
	MetaPID       = "pid"
	MetaEnv       = "env"
	MetaStarted   = "started"
	MetaHTTP      = "http"
)

// semverish is the services API's own SemVer rule (nats.go micro), which refuses anything else.
var semverish = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
var buildMetaUnsafe = regexp.MustCompile(`[^0-9A-Za-z-]+`)

// microVersion maps the build version (git describe: a tag, a hash, "dev", "-dirty") to the SemVer
// string the services API requires: a SemVer tag (with or without its "v") is kept, anything else
// becomes 0.0.0+<version>. The exact build version is also in the metadata.
func microVersion(v string) string {
	if len(v) > 1 && v[0] == 'v' && semverish.MatchString(v[1:]) {
		return v[1:]
	}
	if semverish.MatchString(v) {
		return v
	}
	meta := strings.Trim(buildMetaUnsafe.ReplaceAllString(strings.ReplaceAll(v, ".", "-"), "-"), "-")
	if meta == "" {
		meta = "dev"
	}
	return "0.0.0+" + meta
}

// registerService registers this replica with the NATS services API, so `nats micro ls` and
// `cpctl status` see it with its version, host and session. Operator endpoints are added to the
// returned service's group cp.ops.<name> with Process.AddOpsEndpoint.
func (p *Process) registerService(nc *nats.Conn, common config.Common) (micro.Service, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	meta := map[string]string{
		MetaVersion: Version(),
		MetaHost:    host,
		MetaPID:     strconv.Itoa(os.Getpid()),
		MetaEnv:     string(common.Env),
		MetaStarted: time.Now().UTC().Format(time.RFC3339),
	}
	if p.SessionID != 0 {
		meta[MetaSessionID] = strconv.FormatInt(p.SessionID, 10)
	}
	if p.HTTPAddr != "" {
		meta[MetaHTTP] = p.HTTPAddr
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        p.Name,
		Version:     microVersion(Version()),
		Description: "CryptoPill " + p.Name,
		Metadata:    meta,
	})
	if err != nil {
		return nil, fmt.Errorf("register %s with the NATS services API: %w", p.Name, err)
	}
	return svc, nil
}

// AddOpsEndpoint adds an operator endpoint answering on cp.ops.<service>.<name>, served by one
// replica per request. It fails when the process has no NATS connection.
func (p *Process) AddOpsEndpoint(name string, h micro.Handler) error {
	if p.Micro == nil {
		return fmt.Errorf("ops endpoint %s: %s has no NATS services registration", name, p.Name)
	}
	g := p.Micro.AddGroup(OpsSubjectPrefix + "." + p.Name)
	if err := g.AddEndpoint(name, h); err != nil {
		return fmt.Errorf("ops endpoint %s.%s.%s: %w", OpsSubjectPrefix, p.Name, name, err)
	}
	// Flushed so the server knows the subscription on return: a request sent right after
	// (by cpctl, a test) otherwise can get "no responders".
	if p.NC != nil {
		if err := p.NC.Flush(); err != nil {
			return fmt.Errorf("ops endpoint %s.%s.%s: flush: %w", OpsSubjectPrefix, p.Name, name, err)
		}
	}
	return nil
}
