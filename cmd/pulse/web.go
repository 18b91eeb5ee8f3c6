package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/httpapi/ui"
	"github.com/pulsehq/pulse/metrics"
	"github.com/pulsehq/pulse/server"
)

// webServer is the HTTP side of pulse serve: the API, the dashboard and
// /metrics. A nil *webServer is one that is off.
type webServer struct {
	api    *httpapi.API
	hs     *http.Server
	ln     net.Listener
	served chan error
}

// startWeb listens on addr and serves the HTTP API of src there (srv, or the
// cluster it is a node of; the metrics are srv's), over TLS with tlsCfg
// unless it is nil, demanding token as a bearer token unless it is empty.
func startWeb(addr string, srv *server.Server, src httpapi.Source, m *metrics.Metrics, history int, writeTimeout time.Duration, token string, log *slog.Logger, tlsCfg *tls.Config) (*webServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := m.Register(reg, srv); err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		Source:       src,
		Metrics:      promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}),
		Dashboard:    ui.Handler(),
		History:      history,
		WriteTimeout: writeTimeout,
		Logger:       log,
		Token:        token,
	})
	if err != nil {
		return nil, err
	}
	ln, err := listen(addr, "--http")
	if err != nil {
		api.Close()
		return nil, err
	}
	scheme := "http"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https"
	}
	w := &webServer{
		api: api,
		ln:  ln,
		hs: &http.Server{
			Handler:           api,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			// No WriteTimeout: event streams last; each write of theirs has its own.
		},
		served: make(chan error, 1),
	}
	go func() { w.served <- w.hs.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String(), "token", token != "",
		"dashboard", fmt.Sprintf("%s://%s/", scheme, ln.Addr()), "metrics", fmt.Sprintf("%s://%s/metrics", scheme, ln.Addr()))
	return w, nil
}

// addr returns the address served, nil when off.
func (w *webServer) addr() net.Addr {
	if w == nil {
		return nil
	}
	return w.ln.Addr()
}

// failed returns a channel that yields an error if serving stops on its own.
func (w *webServer) failed() <-chan error {
	if w == nil {
		return nil
	}
	return w.served
}

// shutdown ends the event streams, then lets the other requests finish
// until ctx ends.
func (w *webServer) shutdown(ctx context.Context) {
	if w == nil {
		return
	}
	w.api.Close()
	if err := w.hs.Shutdown(ctx); err != nil {
		w.hs.Close()
	}
}

// minTokenLen is the shortest API token pulse serve takes: 16 characters
// of a random hex string are 64 bits.
const minTokenLen = 16

// httpToken reads the API token of --api-token-file, and refuses to serve
// the API without one on an address other than loopback unless
// --insecure-http says so.
func httpToken(addr, file string, insecure bool, log *slog.Logger) (string, error) {
	if file != "" {
		token, err := httpapi.ReadTokenFile(file)
		if err != nil {
			return "", usageErrorf("--api-token-file: %v", err)
		}
		if len(token) < minTokenLen {
			return "", usageErrorf("--api-token-file: the token in %s has %d characters, fewer than %d; make one with: openssl rand -hex 32 > %s", file, len(token), minTokenLen, file)
		}
		return token, nil
	}
	if addr == "" || loopbackAddr(addr) {
		return "", nil
	}
	if !insecure {
		return "", usageErrorf("refusing to serve the HTTP API on %s, which is not a loopback address, without a token: "+
			"anyone who can reach it could list every session and kick any. "+
			"Give it a token with --api-token-file FILE (make one with: openssl rand -hex 32 > FILE), "+
			"listen on 127.0.0.1 with --http, or, on a network you trust, say --insecure-http", addr)
	}
	log.Warn("serving the HTTP API without a token on a non-loopback address (--insecure-http): anyone who reaches it may list and kick sessions", "addr", addr)
	return "", nil
}

// loopbackAddr reports whether host:port is on a loopback address only:
// an IP address of loopback, or localhost. An empty host, which means
// every interface, and any other name are not.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
