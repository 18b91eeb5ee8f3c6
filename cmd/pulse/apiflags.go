package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/tlsconf"
)

// defaultHTTP is where pulse serve answers HTTP unless told otherwise.
const defaultHTTP = "127.0.0.1:7071"

// apiFlags are the flags of the commands that talk to a server's HTTP API.
type apiFlags struct {
	addr      *string
	timeout   *time.Duration
	tokenFile *string
	tls       apiTLSFlags
}

// apiTLSFlags are the flags for an API served over TLS (https).
type apiTLSFlags struct {
	on                *bool
	ca, cert, keyFile *string
}

func (t *apiTLSFlags) register(fs *flagSet) {
	t.on = fs.bool("tls", false, "speak https to the API (implied by an https:// --http, --ca or --cert)")
	t.ca = fs.String("ca", "", "verify the API's certificate with the CA certificates in this PEM `file` instead of the system's")
	t.cert = fs.String("cert", "", "present this PEM client certificate `file` (needs --key)")
	t.keyFile = fs.String("key", "", "the PEM private key `file` of --cert")
}

// httpClient returns the HTTP client for addr that the flags ask for, and
// addr with the scheme it implies: nil (the default client) and addr as it
// is when TLS is off.
func (t *apiTLSFlags) httpClient(addr string) (*http.Client, string, error) {
	isHTTPS := strings.HasPrefix(addr, "https://")
	if !*t.on && !isHTTPS && *t.ca == "" && *t.cert == "" {
		return nil, addr, nil
	}
	if strings.HasPrefix(addr, "http://") {
		return nil, "", usageErrorf("--http %s is plain http, but --tls, --ca or --cert asks for https: write https://", addr)
	}
	if !isHTTPS {
		addr = "https://" + addr
	}
	cfg, err := tlsconf.Client(tlsconf.ClientFiles{CA: *t.ca, Cert: *t.cert, Key: *t.keyFile})
	if err != nil {
		return nil, "", usageErrorf("--ca, --cert, --key: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr}, addr, nil
}

func (a *apiFlags) register(fs *flagSet) {
	a.addr = fs.String("http", defaultHTTP, "`address` of the server's HTTP API: host:port, http://host:port or https://host:port")
	a.timeout = fs.duration("timeout", 10*time.Second, "how long to wait for the API to answer")
	a.tokenFile = fs.String("token-file", "", "`file` holding the API token of a server run with --api-token-file, sent as a bearer token")
	a.tls.register(fs)
}

// client returns a client of the API the flags name.
func (a *apiFlags) client() (*httpapi.Client, error) {
	hc, addr, err := a.tls.httpClient(*a.addr)
	if err != nil {
		return nil, err
	}
	c, err := httpapi.NewClient(addr, hc)
	if err != nil {
		return nil, usageErrorf("--http: %v", err)
	}
	if *a.timeout <= 0 {
		return nil, usageErrorf("--timeout must be positive, got %v", *a.timeout)
	}
	if *a.tokenFile != "" {
		token, err := httpapi.ReadTokenFile(*a.tokenFile)
		if err != nil {
			return nil, usageErrorf("--token-file: %v", err)
		}
		c.SetToken(token)
	}
	return c, nil
}

// explain adds to an error of the API client what the user can do.
func explain(err error) error {
	var cve *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cve):
		return fmt.Errorf("%w\nThe API's certificate is not one this command trusts: give the CA that signed it with --ca or PULSE_CA", err)
	case errors.Is(err, httpapi.ErrUnreachable) && strings.Contains(err.Error(), "speaks https"):
		return fmt.Errorf("%w\nAdd --tls (and --ca if its certificate is from a private CA), or write https:// in --http", err)
	}
	if errors.Is(err, httpapi.ErrUnreachable) {
		return fmt.Errorf("%w\nIs pulse serve running, with its HTTP API (--http) there? Point this command at it with --http or PULSE_HTTP", err)
	}
	var ae *httpapi.Error
	if errors.As(err, &ae) && ae.Code == httpapi.CodeUnauthorized {
		return fmt.Errorf("%w\nThis server wants its API token: give the file that holds it with --token-file or PULSE_TOKEN_FILE", err)
	}
	return err
}

// ago formats how long ago something was, kubectl style: 4.2s, 42s, 5m3s,
// 3h12m, 2d4h.
func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// rtt formats a round-trip time in milliseconds, "-" when unknown.
func rtt(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fms", ms)
}
