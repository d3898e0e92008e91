package service_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"cryptopill.dev/jobs/libs/config"
	"cryptopill.dev/jobs/libs/service"
	"cryptopill.dev/jobs/libs/testkit/natstest"
)

// testCA issues certificates for one test: a CA, and leaves signed by it, written as PEM files.
type testCA struct {
	t      *testing.T
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial int64
}

func newTestCA(t *testing.T) (*testCA, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	// A fixed validity around a fixed instant would be refused by the server's clock; the
	// certificates' dates are not what the test is about, so they span any plausible now.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cp test ca"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{t: t, dir: t.TempDir(), cert: cert, key: key, serial: 1}
	return ca, ca.write("ca.crt", "CERTIFICATE", der)
}

func (ca *testCA) write(name, typ string, der []byte) string {
	path := filepath.Join(ca.dir, name)
	require.NoError(ca.t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	return path
}

// issue writes a leaf certificate and key for name: a server's (on 127.0.0.1) or a client's.
func (ca *testCA) issue(name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(ca.t, err)
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(ca.t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(ca.t, err)
	return ca.write(name+".crt", "CERTIFICATE", der), ca.write(name+".key", "EC PRIVATE KEY", kder)
}

// NATS_TLS_CA, NATS_TLS_CERT and NATS_TLS_KEY reach the connection: a tls:// server that verifies
// clients admits a service with its certificate and refuses one without.
func TestNATSOverTLS(t *testing.T) {
	t.Parallel()
	ca, caFile := newTestCA(t)
	srvCert, srvKey := ca.issue("server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue("straux", x509.ExtKeyUsageClientAuth)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	require.NoError(t, os.WriteFile(conf, []byte(`jetstream {}
tls { cert_file: "`+srvCert+`", key_file: "`+srvKey+`", ca_file: "`+caFile+`", verify: true }
`), 0o644))
	ns := natstest.NewServerFromConfig(t, conf)
	url := "tls://" + strings.TrimPrefix(strings.TrimPrefix(ns.URL, "nats://"), "tls://")

	load := func(env map[string]string) config.Common {
		env["DATABASE_URL"], env["NATS_URL"] = "postgres://unused/x", url
		l := config.NewLoader(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		c := l.LoadCommon("127.0.0.1:0")
		require.NoError(t, l.Err())
		return c
	}
	connect := func(c config.Common) error {
		opts, err := service.NATSOptions("straux", c)
		require.NoError(t, err)
		nc, err := nats.Connect(c.NATSURL, opts...)
		if err == nil {
			nc.Close()
		}
		return err
	}
	require.NoError(t, connect(load(map[string]string{"NATS_TLS_CA": caFile, "NATS_TLS_CERT": cliCert, "NATS_TLS_KEY": cliKey})))
	require.Error(t, connect(load(map[string]string{"NATS_TLS_CA": caFile})), "no client certificate")
	require.Error(t, connect(load(map[string]string{})), "the server's CA unknown")
}
