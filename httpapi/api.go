// Package httpapi is pulse's HTTP surface: a JSON API over the session
// table, a stream of session events as server-sent events, Prometheus
// metrics, and the live dashboard.
//
//	GET    /v1/sessions          a page of sessions (?state= ?name= ?limit= ?cursor=)
//	GET    /v1/sessions/{name}   one session
//	DELETE /v1/sessions/{name}   kick it
//	GET    /v1/events            server-sent events; Last-Event-ID resumes
//	GET    /v1/cluster           the nodes of a cluster and the state of its store
//	GET    /healthz              200 while serving
//	GET    /metrics              Prometheus metrics
//	GET    /                     the dashboard
//
// With Config.Token set, every endpoint but /healthz and the dashboard's
// static files wants "Authorization: Bearer <token>".
//
// docs/api.md documents every answer. Client is the Go client of the API.
package httpapi

import (
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
)

// Source is the session table the API serves; a *server.Server is one.
type Source interface {
	// Page returns a page of the live sessions; see registry.Registry.Page.
	Page(q registry.Query) registry.Page
	// Session returns the named live session.
	Session(name string) (pulse.Session, bool)
	// Kick removes the named session and returns it as it was, or an
	// error wrapping registry.ErrNotFound.
	Kick(name, detail string) (pulse.Session, error)
	// Subscribe returns the stream of events declared from now on.
	Subscribe(buffer int) *registry.Subscription
}

// Defaults for Config fields left zero.
const (
	DefaultHistory      = 10_000
	DefaultWriteTimeout = 10 * time.Second
	DefaultKeepAlive    = 15 * time.Second
)

// Config configures an API.
type Config struct {
	// Source is the session table. Required.
	Source Source
	// Metrics serves GET /metrics, such as promhttp.HandlerFor. Nil means
	// the endpoint answers 404.
	Metrics http.Handler
	// Dashboard serves GET / and the files under it. Nil means none: 404.
	Dashboard http.Handler
	// History is how many recent events are kept for event streams that
	// resume with Last-Event-ID, and how far a stream may fall behind
	// before it is dropped. Zero means 10,000.
	History int
	// WriteTimeout is how long a write to an event stream may stay
	// blocked, its reader not reading, before the stream is cut. Zero
	// means 10 s.
	WriteTimeout time.Duration
	// KeepAlive is how often an idle event stream gets a comment line, so
	// that proxies keep it open and a vanished reader is noticed. Zero
	// means 15 s.
	KeepAlive time.Duration
	// Logger receives the API's log. Nil means slog.Default().
	Logger *slog.Logger
	// Token, if set, is the bearer token that every request but GET
	// /healthz and the dashboard's static files must carry, as
	// "Authorization: Bearer <token>"; others are answered 401. Empty
	// means none is asked for.
	Token string
}

// API serves the HTTP API of one session table. It is an http.Handler.
type API struct {
	cfg   Config
	hub   *hub
	mux   *http.ServeMux
	token []byte // SHA-256 of cfg.Token; nil if none
}

// New returns an API over cfg.Source. It follows the source's events from
// now on; Close stops it.
func New(cfg Config) (*API, error) {
	if cfg.Source == nil {
		return nil, errors.New("httpapi: Config.Source is required")
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, hub: newHub(cfg.Source, cfg.History, cfg.Logger)}
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		a.token = sum[:]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/sessions", a.sessions)
	mux.HandleFunc("/v1/sessions/{name}", a.session)
	mux.HandleFunc("/v1/events", a.events)
	mux.HandleFunc("/v1/cluster", a.cluster)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "no endpoint %s; see docs/api.md", r.URL.Path))
	})
	mux.HandleFunc("/healthz", a.healthz)
	mux.Handle("/metrics", orNotFound(cfg.Metrics, "metrics are not enabled on this server"))
	mux.Handle("/", orNotFound(cfg.Dashboard, "the dashboard is not enabled on this server"))
	a.mux = mux
	return a, nil
}

// ServeHTTP serves the API, to requests that carry the token if one is set.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.authorize(w, r) {
		a.mux.ServeHTTP(w, r)
	}
}

// Close ends every event stream, once it has sent the events already
// declared, and stops following the source. Call it before
// http.Server.Shutdown, which waits for the streams.
func (a *API) Close() { a.hub.close() }

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, "GET")
		return
	}
	if a.hub.isClosed() {
		writeError(w, errorf(http.StatusServiceUnavailable, CodeUnavailable, "the server is shutting down"))
		return
	}
	p := a.cfg.Source.Page(registry.Query{Limit: 1})
	writeJSON(w, http.StatusOK, Health{Status: "ok", Version: pulse.Version, Sessions: p.Counts.Total()})
}

func orNotFound(h http.Handler, why string) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, CodeNotFound, "%s", why))
	})
}
