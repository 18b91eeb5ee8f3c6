package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
// cluster it is a node of); the metrics are srv's.
func startWeb(addr string, srv *server.Server, src httpapi.Source, m *metrics.Metrics, history int, writeTimeout time.Duration, log *slog.Logger) (*webServer, error) {
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
	})
	if err != nil {
		return nil, err
	}
	ln, err := listen(addr, "--http")
	if err != nil {
		api.Close()
		return nil, err
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
	log.Info("http listening", "addr", ln.Addr().String(),
		"dashboard", fmt.Sprintf("http://%s/", ln.Addr()), "metrics", fmt.Sprintf("http://%s/metrics", ln.Addr()))
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
