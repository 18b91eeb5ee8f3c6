package tlsconf

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/internal/testpki"
)

func TestLoadServerAndReload(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ca")
	cert, key := ca.Server(t, "one").WriteFiles(t, dir, "server")
	caFile := filepath.Join(dir, "ca.crt")
	testpki.WriteFile(t, caFile, ca.PEM)
	s, err := LoadServer(ServerFiles{Cert: cert, Key: key, ClientCA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := s.HeartbeatConfig().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil || hb.ClientAuth != tls.RequireAndVerifyClientCert || hb.ClientCAs == nil || !s.MutualTLS() {
		t.Fatalf("heartbeat config %+v, %v: want client certificates demanded", hb, err)
	}
	if c, _ := s.HTTPConfig().GetCertificate(nil); c.Leaf.Subject.CommonName != "one" {
		t.Fatalf("HTTP certificate %q", c.Leaf.Subject.CommonName)
	}
	// A CA file that holds no certificate fails the reload, and the old
	// material stays.
	ca.Server(t, "two").WriteFiles(t, dir, "server")
	testpki.WriteFile(t, caFile, []byte("nothing"))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("Reload = %v", err)
	}
	if cn := s.Leaf().Subject.CommonName; cn != "one" {
		t.Fatalf("after a failed reload: %q", cn)
	}
	testpki.WriteFile(t, caFile, ca.PEM)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.HTTPConfig().GetCertificate(nil); c.Leaf.Subject.CommonName != "two" || s.Leaf().Subject.CommonName != "two" {
		t.Fatalf("after a reload: %q", c.Leaf.Subject.CommonName)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadServer(ServerFiles{Cert: filepath.Join(dir, "none.crt"), Key: filepath.Join(dir, "none.key")}); err == nil {
		t.Fatal("missing files loaded")
	}
	if _, err := LoadServer(ServerFiles{Cert: "x"}); err == nil {
		t.Fatal("a certificate without a key loaded")
	}
	if _, err := Client(ClientFiles{Cert: "x"}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Fatalf("Client with a certificate and no key: %v", err)
	}
	c, err := Client(ClientFiles{})
	if err != nil || c.RootCAs != nil || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("Client() = %+v, %v: want the system roots", c, err)
	}
}
