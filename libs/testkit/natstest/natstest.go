// Package natstest runs real NATS servers with JetStream inside the test process: one server or a
// three-node cluster on free loopback ports with temporary storage, shut down when the test ends.
package natstest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is one embedded JetStream server.
type Server struct {
	*server.Server
	// URL is the client URL, nats://127.0.0.1:<port>.
	URL  string
	opts *server.Options
	port int
}

// NewServer starts a JetStream server for t and shuts it down at cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s := startServer(t, opts)
	t.Cleanup(s.Shutdown)
	return s
}

func startServer(t testing.TB, opts *server.Options) *Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("natstest: server not ready")
	}
	return &Server{Server: s, URL: s.ClientURL(), opts: opts, port: s.Addr().(*net.TCPAddr).Port}
}

// Restart stops the server and starts it again on the same port with the same storage, as a
// NATS restart in production would. Streams and consumers survive.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	opts := *s.opts
	opts.Port = s.port
	n := startServer(t, &opts)
	s.Server, s.opts, s.URL = n.Server, n.opts, n.URL
	t.Cleanup(n.Shutdown)
}

// Connect opens a client connection closed at cleanup.
func (s *Server) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", s.URL, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster is an n-node JetStream cluster in this process.
type Cluster struct {
	Servers []*Server
	// URL lists every node, comma-separated, as nats.Connect accepts.
	URL string
}

// NewCluster starts an n-node JetStream cluster (n ≥ 3 for R3 streams) and waits for a meta leader.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	clusterPorts := make([]int, n)
	for i := range clusterPorts {
		clusterPorts[i] = freePort(t)
	}
	routes := make([]string, n)
	for i, p := range clusterPorts {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "cptest", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:     server.RoutesFromStr(joinExcept(routes, i)),
		}
		s := startServer(t, opts)
		t.Cleanup(s.Shutdown)
		c.Servers = append(c.Servers, s)
	}
	urls := make([]string, n)
	for i, s := range c.Servers {
		urls[i] = s.URL
	}
	c.URL = joinExcept(urls, -1)
	deadline := time.Now().Add(30 * time.Second)
	for !c.ready() {
		if time.Now().After(deadline) {
			t.Fatalf("natstest: JetStream cluster not formed after 30s (no meta leader, or a peer not current)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// ready reports whether a meta leader sees every other node as a current, online peer: only
// then can streams with as many replicas as nodes be placed.
func (c *Cluster) ready() bool {
	for _, s := range c.Servers {
		if !s.JetStreamIsLeader() {
			continue
		}
		info, err := s.Jsz(nil)
		if err != nil || info.Meta == nil || len(info.Meta.Replicas) != len(c.Servers)-1 {
			return false
		}
		for _, p := range info.Meta.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
		return true
	}
	return false
}

func joinExcept(xs []string, skip int) string {
	out := ""
	for i, x := range xs {
		if i == skip {
			continue
		}
		if out != "" {
			out += ","
		}
		out += x
	}
	return out
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// NewServerFromConfig starts a JetStream server for t from a nats-server configuration file (its
// users, permissions and accounts), listening on a free loopback port with temporary storage
// whatever the file says, and shuts it down at cleanup.
func NewServerFromConfig(t testing.TB, path string) *Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("natstest: config %s: %v", path, err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	s := startServer(t, opts)
	t.Cleanup(s.Shutdown)
	return s
}
