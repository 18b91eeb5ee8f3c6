package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/auth"
	pulseclient "github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/internal/testpki"
	"github.com/pulsehq/pulse/tlsconf"
	"github.com/pulsehq/pulse/wire"
)

// authCounter is an Observer that counts refused authentications.
type authCounter struct {
	nopObserver
	mu sync.Mutex
	n  map[string]int
}

func (c *authCounter) AuthFailed(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[reason]++
}

func (c *authCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

var jwtSecret = []byte("pulse-test-secret-of-32-bytes-ok")

func token(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
}

func TestJWTRefusals(t *testing.T) {
	v, err := auth.NewJWTVerifier(jwtSecret, auth.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &authCounter{}
	ts := startServer(t, Config{Timing: fast, Authenticator: v, Observer: obs})
	hs := jwt.SigningMethodHS256
	cases := []struct {
		name, hello, reason, says string
	}{
		{"no token", `HELLO web-1`, auth.ReasonMissingToken, "token is required"},
		{"empty options", `HELLO web-1 {"ack":true}`, auth.ReasonMissingToken, "token is required"},
		{"bad signature", `HELLO web-1 {"token":"` + token(t, hs, []byte("another-secret-of-32-bytes-or-so"), validClaims("web-1")) + `"}`,
			auth.ReasonBadSignature, "signature"},
		{"alg none", `HELLO web-1 {"token":"` + token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims("web-1")) + `"}`,
			auth.ReasonBadAlgorithm, `"none" is not accepted`},
		{"expired", `HELLO web-1 {"token":"` + token(t, hs, jwtSecret, jwt.MapClaims{"sub": "web-1", "exp": time.Now().Add(-time.Hour).Unix()}) + `"}`,
			auth.ReasonExpired, "expired"},
		{"sub mismatch", `HELLO web-1 {"token":"` + token(t, hs, jwtSecret, validClaims("web-2")) + `"}`,
			auth.ReasonSubjectMismatch, `"web-2" is not the name "web-1"`},
	}
	for i, tc := range cases {
		c := ts.dial(t)
		c.say(t, tc.hello)
		line := c.hear(t, "ERR unauthorized ")
		if !strings.Contains(line, tc.says) {
			t.Errorf("%s: %q does not say %q", tc.name, line, tc.says)
		}
		c.closed(t)
		if n := obs.counts()[tc.reason]; n == 0 {
			t.Errorf("%s: pulse_auth_failures_total{reason=%q} not counted after case %d: %v", tc.name, tc.reason, i, obs.counts())
		}
	}
	want := map[string]int{auth.ReasonMissingToken: 2, auth.ReasonBadSignature: 1, auth.ReasonBadAlgorithm: 1, auth.ReasonExpired: 1, auth.ReasonSubjectMismatch: 1}
	if got := obs.counts(); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	// No refused HELLO made an event: the next one is the valid session's.
	c := ts.dial(t)
	c.say(t, `HELLO web-1 {"token":"`+token(t, hs, jwtSecret, validClaims("web-1"))+`"}`)
	c.hear(t, "WELCOME ")
	ts.expect(t, pulse.EventJoined, "web-1", pulse.ReasonHello)
}

func TestJWTWithClient(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for _, tc := range []struct {
		name   string
		key    []byte
		method jwt.SigningMethod
		signer any
	}{
		{"HS256", jwtSecret, jwt.SigningMethodHS256, jwtSecret},
		{"ES256", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), jwt.SigningMethodES256, ec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := auth.NewJWTVerifier(tc.key, auth.JWTOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ts := startServer(t, Config{Timing: fast, Authenticator: v})
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			cl, err := pulseclient.Dial(ctx, ts.addr, "web-1", pulseclient.WithToken(token(t, tc.method, tc.signer, validClaims("web-1"))))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ts.expect(t, pulse.EventJoined, "web-1", pulse.ReasonHello)
			waitBeats(t, ts, "web-1", 3)

			// A client with a token for another name is refused for good.
			_, err = pulseclient.Dial(ctx, ts.addr, "web-2", pulseclient.WithToken(token(t, tc.method, tc.signer, validClaims("web-1"))))
			if err == nil || !strings.Contains(err.Error(), "unauthorized") {
				t.Fatalf("Dial with another's token: %v, want unauthorized", err)
			}
		})
	}
}

// waitBeats waits until the named session has more than n beats.
func waitBeats(t *testing.T, ts *testServer, name string, n uint64) pulse.Session {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		s, ok := ts.Session(name)
		if ok && s.Beats > n {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s: %+v, %v; want more than %d beats", name, s, ok, n)
		}
		time.Sleep(5 * time.Millisecond) // polling real sockets for a condition
	}
}

// pki is a CA, a server certificate and key in files, and the server's
// TLS material loaded from them.
type pki struct {
	ca               *testpki.CA
	dir              string
	certFile, key    string
	clientCAFile     string
	material         *tlsconf.Server
	clientCA         *testpki.CA
	serverCommonName string
}

func newPKI(t *testing.T, mutual bool) *pki {
	t.Helper()
	p := &pki{ca: testpki.NewCA(t, "pulse test CA"), dir: t.TempDir(), serverCommonName: "server-1"}
	p.certFile, p.key = p.ca.Server(t, p.serverCommonName).WriteFiles(t, p.dir, "server")
	files := tlsconf.ServerFiles{Cert: p.certFile, Key: p.key}
	if mutual {
		p.clientCA = testpki.NewCA(t, "pulse clients CA")
		p.clientCAFile = filepath.Join(p.dir, "clients-ca.crt")
		testpki.WriteFile(t, p.clientCAFile, p.clientCA.PEM)
		files.ClientCA = p.clientCAFile
	}
	m, err := tlsconf.LoadServer(files)
	if err != nil {
		t.Fatal(err)
	}
	p.material = m
	return p
}

func (p *pki) wrap(ln net.Listener) net.Listener {
	return tls.NewListener(ln, p.material.HeartbeatConfig())
}

func (p *pki) clientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), Certificates: certs}
}

// tlsDial opens a raw TLS connection to ts.
func tlsDial(t *testing.T, ts *testServer, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(patience))
	return &client{Conn: nc, rd: bufio.NewReader(nc)}
}

func TestTLS(t *testing.T) {
	p := newPKI(t, false)
	ts := startServerWith(t, Config{Timing: fast}, p.wrap)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cl, err := pulseclient.Dial(ctx, ts.addr, "web-1", pulseclient.WithTLS(p.clientConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts.expect(t, pulse.EventJoined, "web-1", pulse.ReasonHello)
	waitBeats(t, ts, "web-1", 3)

	// A client that does not trust the server's CA does not get in.
	_, err = pulseclient.Dial(ctx, ts.addr, "web-2", pulseclient.WithTLS(&tls.Config{RootCAs: testpki.NewCA(t, "other").Pool()}),
		pulseclient.WithBackoff(time.Millisecond, time.Millisecond), pulseclient.OnStatus(func(s pulseclient.Status) {
			if s.State == pulseclient.StateBackoff {
				cancel()
			}
		}))
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial trusting another CA: %v", err)
	}
	if st := cl.Status(); st.State != pulseclient.StateConnected {
		t.Fatalf("the TLS session is %v", st.State)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t, true)
	v, err := auth.NewJWTVerifier(jwtSecret, auth.JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &authCounter{}
	certOnly := startServerWith(t, Config{Timing: fast, Authenticator: auth.ClientCertName{}, Observer: obs}, p.wrap)
	both := startServerWith(t, Config{Timing: fast, Authenticator: auth.All(v, auth.ClientCertName{}), Observer: obs}, p.wrap)
	web1 := p.clientCA.Client(t, "web-1", "web-1.eu.example")
	stranger := testpki.NewCA(t, "stranger CA").Client(t, "web-1")

	t.Run("CN and DNS names register", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		for _, name := range []string{"web-1", "web-1.eu.example"} {
			cl, err := pulseclient.Dial(ctx, certOnly.addr, name, pulseclient.WithTLS(p.clientConfig(web1.TLS)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			certOnly.expect(t, pulse.EventJoined, name, pulse.ReasonHello)
			cl.Close()
			certOnly.expect(t, pulse.EventLeft, name, pulse.ReasonBye)
		}
	})
	t.Run("another name is refused", func(t *testing.T) {
		c := tlsDial(t, certOnly, p.clientConfig(web1.TLS))
		c.say(t, "HELLO web-2")
		line := c.hear(t, "ERR unauthorized ")
		if !strings.Contains(line, `"web-2" is neither the client certificate's CN "web-1"`) {
			t.Errorf("%q does not say why", line)
		}
		c.closed(t)
		if obs.counts()[auth.ReasonCertNameMismatch] != 1 {
			t.Errorf("counts %v", obs.counts())
		}
	})
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{{"no client certificate", nil}, {"a certificate of another CA", []tls.Certificate{stranger.TLS}}} {
		t.Run(tc.name, func(t *testing.T) {
			before := obs.counts()[ReasonTLSHandshake]
			nc, err := tls.Dial("tcp", certOnly.addr, p.clientConfig(tc.certs...))
			if err == nil { // TLS 1.3: the server's refusal comes after the client's handshake
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(patience))
				_, _ = io.WriteString(nc, "HELLO web-1\n")
				_, err = bufio.NewReader(nc).ReadString('\n')
			}
			if err == nil {
				t.Fatal("got in without a certificate of the client CA")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %v does not speak of the certificate", err)
			}
			waitFor(t, func() bool { return obs.counts()[ReasonTLSHandshake] == before+1 }, "tls_handshake counted")
		})
	}
	t.Run("JWT and certificate both needed", func(t *testing.T) {
		c := tlsDial(t, both, p.clientConfig(web1.TLS))
		c.say(t, "HELLO web-1")
		c.hear(t, "ERR unauthorized a token is required")
		c.closed(t)
		c = tlsDial(t, both, p.clientConfig(web1.TLS))
		c.say(t, `HELLO web-2 {"token":"`+token(t, jwt.SigningMethodHS256, jwtSecret, validClaims("web-2"))+`"}`)
		c.hear(t, "ERR unauthorized the name \"web-2\" is neither")
		c.closed(t)
		c = tlsDial(t, both, p.clientConfig(web1.TLS))
		c.say(t, `HELLO web-1 {"token":"`+token(t, jwt.SigningMethodHS256, jwtSecret, validClaims("web-1"))+`"}`)
		c.hear(t, "WELCOME ")
		both.expect(t, pulse.EventJoined, "web-1", pulse.ReasonHello)
	})
}

// waitFor polls cond, on real sockets, until it holds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", patience, what)
		}
		time.Sleep(5 * time.Millisecond) // polling real sockets for a condition
	}
}

func TestTLSReloadKeepsSessions(t *testing.T) {
	p := newPKI(t, false)
	ts := startServerWith(t, Config{Timing: fast}, p.wrap)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cl, err := pulseclient.Dial(ctx, ts.addr, "old-1", pulseclient.WithTLS(p.clientConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts.expect(t, pulse.EventJoined, "old-1", pulse.ReasonHello)
	before := waitBeats(t, ts, "old-1", 1)

	// A failed reload keeps the old certificate.
	testpki.WriteFile(t, p.key, []byte("not a key"))
	if err := p.material.Reload(); err == nil {
		t.Fatal("a reload of a broken key succeeded")
	}
	if cn := servedCN(t, ts, p); cn != "server-1" {
		t.Fatalf("after a failed reload the server presents %q", cn)
	}
	// A new certificate, from a new CA too, is served to new connections.
	ca2 := testpki.NewCA(t, "pulse test CA 2")
	ca2.Server(t, "server-2").WriteFiles(t, p.dir, "server")
	if err := p.material.Reload(); err != nil {
		t.Fatal(err)
	}
	p.ca = ca2
	if cn := servedCN(t, ts, p); cn != "server-2" {
		t.Fatalf("after the reload the server presents %q", cn)
	}
	// The old session kept beating through it all, and nothing happened to it.
	waitBeats(t, ts, "old-1", before.Beats+3)
	c := tlsDial(t, ts, p.clientConfig())
	c.register(t, ts, "new-1") // the next event is the new one's: no left, suspect or dead
	if st := cl.Status(); st.State != pulseclient.StateConnected || st.Attempt != 0 {
		t.Fatalf("old client: %+v", st)
	}
}

// servedCN returns the common name of the certificate the server presents.
func servedCN(t *testing.T, ts *testServer, p *pki) string {
	t.Helper()
	nc, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true}) // only to look at the certificate
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	return nc.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestTLSHandshakeDeadline(t *testing.T) {
	p := newPKI(t, false)
	obs := &authCounter{}
	const helloTimeout = 300 * time.Millisecond
	// A slower beat than fast: the healthy session must show no event
	// while the test runs, and its TLS client may run late on a loaded
	// machine.
	steady := pulse.Timing{Interval: 200 * time.Millisecond, Misses: 5}
	ts := startServerWith(t, Config{Timing: steady, HelloTimeout: helloTimeout, Observer: obs}, p.wrap)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cl, err := pulseclient.Dial(ctx, ts.addr, "healthy", pulseclient.WithTLS(p.clientConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ts.expect(t, pulse.EventJoined, "healthy", pulse.ReasonHello)
	before := waitBeats(t, ts, "healthy", 1)

	for _, tc := range []struct {
		name  string
		sends []byte
	}{
		{"silent", nil},
		// A TLS handshake record header announcing 512 bytes, and 10 of them.
		{"half a ClientHello", append([]byte{0x16, 0x03, 0x01, 0x02, 0x00}, make([]byte, 10)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := time.Now()
			if _, err := nc.Write(tc.sends); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(patience))
			n, err := io.Copy(io.Discard, nc)
			took := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("not closed within %v", patience)
			}
			t.Logf("closed after %v", took)
			if took < helloTimeout-50*time.Millisecond || took > helloTimeout+2*time.Second {
				t.Fatalf("closed after %v (read %d bytes), want about the hello timeout %v", took, n, helloTimeout)
			}
		})
	}
	if n := obs.counts()[ReasonTLSHandshake]; n != 2 {
		t.Errorf("tls_handshake counted %d times, want 2", n)
	}
	waitBeats(t, ts, "healthy", before.Beats+3)
	c := tlsDial(t, ts, p.clientConfig())
	c.register(t, ts, "probe") // no event for the healthy session meanwhile
}

// A client that forgets TLS is told so, in the clear, rather than seeing
// the connection closed without a word; the Go client stops at once.
func TestPlainTextToTLSPort(t *testing.T) {
	p := newPKI(t, false)
	obs := &authCounter{}
	ts := startServerWith(t, Config{Timing: fast, Observer: obs}, p.wrap)

	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(patience))
	if _, err := io.WriteString(nc, "HELLO web-1 {\"ack\":true}\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("read %q, then %v; want the answer and a clean close", got, err)
	}
	if !strings.HasPrefix(string(got), "ERR unauthorized this port speaks TLS") || strings.Count(string(got), "\n") != 1 {
		t.Fatalf("plain text on the TLS port got %q", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err = pulseclient.Dial(ctx, ts.addr, "web-1")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnauthorized {
		t.Fatalf("plain client Dial to a TLS port = %v, want ERR unauthorized at once", err)
	}
	if n := obs.counts()[ReasonTLSHandshake]; n != 2 {
		t.Errorf("tls_handshake counted %d times, want 2", n)
	}
}

// A TLS connection refused by a limit is told so after its handshake, but
// one that never sends its ClientHello is closed within refuseTLSTimeout:
// it is counted by no limit, so it must not be held for as long as it
// likes.
func TestTLSRefusalIsBounded(t *testing.T) {
	p := newPKI(t, false)
	ts := startServerWith(t, Config{Timing: fast, MaxConnsPerIP: 1, HelloTimeout: time.Minute}, p.wrap)
	held, err := net.Dial("tcp", ts.addr) // the one the limit allows
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitFor(t, func() bool { return ts.Connections() == 1 }, "the first connection counted")

	over := tlsDial(t, ts, p.clientConfig())
	over.hear(t, "ERR too_many_connections")
	over.closed(t)

	silent, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_ = silent.SetReadDeadline(time.Now().Add(patience))
	_, err = io.Copy(io.Discard, silent)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a silent connection over the limit was still open after %v", patience)
	}
	if took := time.Since(start); took > refuseTLSTimeout+time.Second {
		t.Fatalf("a silent connection over the limit was closed after %v, want about %v", took, refuseTLSTimeout)
	}
}
