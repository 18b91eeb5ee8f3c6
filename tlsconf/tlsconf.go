// Package tlsconf loads the TLS material of pulse from files, serves it to
// the heartbeat and HTTP listeners, and reloads it (on SIGHUP, in pulse
// serve) without dropping a connection: every handshake takes the
// material current at its start from an atomically swapped value, and
// connections already up keep what they were made with.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// ServerFiles name the server's certificate chain and key (PEM), and
// optionally the CA bundle (PEM) that client certificates must chain to.
type ServerFiles struct {
	Cert, Key string
	// ClientCA, if set, demands a verified client certificate on the
	// heartbeat port (mTLS).
	ClientCA string
}

// Server holds the server's current TLS material. Create it with
// LoadServer; it is safe for concurrent use.
type Server struct {
	files ServerFiles
	cur   atomic.Pointer[material]
}

// material is one loading of the files, with the configurations built
// from it.
type material struct {
	cert      *tls.Certificate
	heartbeat *tls.Config
}

// LoadServer reads the files and returns the material they hold.
func LoadServer(files ServerFiles) (*Server, error) {
	if files.Cert == "" || files.Key == "" {
		return nil, errors.New("tlsconf: both a certificate and a key file are needed")
	}
	s := &Server{files: files}
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return s, nil
}

// Reload reads the files again and, if they hold valid material, serves it
// to every handshake from now on. If not, the old material stays and
// Reload returns why.
func (s *Server) Reload() error {
	m, err := s.load()
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// MutualTLS reports whether client certificates are demanded on the
// heartbeat port.
func (s *Server) MutualTLS() bool { return s.files.ClientCA != "" }

// Leaf returns the certificate currently served.
func (s *Server) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

func (s *Server) load() (*material, error) {
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate %s and key %s: %w", s.files.Cert, s.files.Key, err)
	}
	m := &material{cert: &cert}
	m.heartbeat = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if s.files.ClientCA != "" {
		pool, err := loadPool(s.files.ClientCA)
		if err != nil {
			return nil, err
		}
		m.heartbeat.ClientCAs = pool
		m.heartbeat.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return m, nil
}

// HeartbeatConfig returns the configuration of the heartbeat listener:
// the current certificate and, with a client CA, client certificates
// demanded and verified (tls.RequireAndVerifyClientCert).
func (s *Server) HeartbeatConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().heartbeat, nil
		},
	}
}

// HTTPConfig returns the configuration of the HTTP listener: the current
// certificate, HTTP/2 and HTTP/1.1, and no client certificates.
func (s *Server) HTTPConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
}

// ClientFiles name what a client needs: the CA bundle to verify the
// server with (empty: the system's roots), and a certificate and key to
// present for mTLS (both or neither).
type ClientFiles struct {
	CA, Cert, Key string
}

// Client returns the configuration of a client with files.
func Client(files ClientFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if files.CA != "" {
		pool, err := loadPool(files.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	switch {
	case files.Cert != "" && files.Key != "":
		cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: client certificate %s and key %s: %w", files.Cert, files.Key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case files.Cert != "" || files.Key != "":
		return nil, errors.New("tlsconf: a client certificate needs both a certificate and a key file")
	}
	return c, nil
}

// loadPool reads a PEM bundle of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsconf: CA bundle %s: no PEM certificate in it", file)
	}
	return pool, nil
}
