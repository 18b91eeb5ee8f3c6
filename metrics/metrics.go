// Package metrics measures a pulse server for Prometheus: sessions by
// state, beats, session events by kind and reason, how late deaths are
// declared, round-trip times, connections rejected by ERR code (limits
// included), connections open and their limit, and the
// stalls of the server itself.
//
// A Metrics is the server's Observer; register it once the server exists:
//
//	m := metrics.New()
//	srv, _ := server.New(server.Config{Observer: m})
//	reg := prometheus.NewRegistry()
//	if err := m.Register(reg, srv); err != nil { … }
package metrics

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/wire"
)

// Metrics collects a server's measurements. It implements server.Observer;
// its methods are safe for concurrent use and never block.
type Metrics struct {
	beats    prometheus.Counter
	rtt      prometheus.Histogram
	events   *prometheus.CounterVec
	lateness *prometheus.HistogramVec
	rejected *prometheus.CounterVec
	// authFailures counts refused authentications by reason.
	authFailures *prometheus.CounterVec

	stalls       prometheus.Counter
	stallSeconds prometheus.Histogram
	stallHeld    prometheus.Counter

	storeUp     prometheus.Gauge
	storeErrors prometheus.Counter
}

// LatenessBuckets are the bounds, in seconds, of the detection-lateness
// histogram: a judgment is meant to come within milliseconds of its
// deadline, and a stall shows as seconds.
var LatenessBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}

// RTTBuckets are the bounds, in seconds, of the round-trip-time histogram,
// from a loopback client to one across the world.
var RTTBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// StallBuckets are the bounds, in seconds, of the histogram of the
// server's own stalls: from the shortest one noticed (the default stall
// threshold, 0.5 s) to a VM paused for minutes.
var StallBuckets = []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300}

// New returns metrics that count nothing yet.
func New() *Metrics {
	m := &Metrics{
		beats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_beats_total",
			Help: "Heartbeats received from registered sessions.",
		}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulse_rtt_seconds",
			Help:    "Round-trip times reported by clients in their beats.",
			Buckets: RTTBuckets,
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_events_total",
			Help: "Events by kind (joined, suspect, recovered, left, dead, replaced, kicked, and stall for the server's own) and reason.",
		}, []string{"kind", "reason"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulse_detection_lateness_seconds",
			Help:    "Time from a session's deadline to the moment it was declared suspect or dead.",
			Buckets: LatenessBuckets,
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_connections_rejected_total",
			Help: "Connections the server ended with ERR <code>: refused at HELLO, cut for a protocol error, refused or cut by a limit (too_many_connections, rate_limited, slow_consumer, counted even when the client could not be told), or ended by the server (timeout, replaced, kicked, shutdown).",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_auth_failures_total",
			Help: authFailuresHelp,
		}, []string{"reason"}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_server_stalls_total",
			Help: "Stalls of the server itself that it noticed (its timer fired the stall threshold or more late); it held suspect and dead judgments after each.",
		}),
		stallSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulse_server_stall_seconds",
			Help:    "Length of the server's own stalls: how late its timer fired, a lower bound of the time it did not run.",
			Buckets: StallBuckets,
		}),
		stallHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_server_stall_held_judgments_total",
			Help: "Sessions past a suspect or dead deadline when a stall was noticed: judgments held until the server had read what arrived during the stall.",
		}),
	}
	m.storeUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pulse_store_up",
		Help: "1 while the cluster's store (Redis) is reachable and this node is synced with it, 0 while it is not; always 0 on a single server, which has none.",
	})
	m.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pulse_store_errors_total",
		Help: "Round trips to the cluster's store (Redis) that failed.",
	})
	// Series that dashboards and alerts expect to exist from the start.
	for _, k := range []pulse.EventKind{pulse.EventSuspect, pulse.EventDead} {
		m.lateness.WithLabelValues(k.String())
	}
	return m
}

// SessionCounter tells how many sessions are live by state; a
// *server.Server is one.
type SessionCounter interface {
	Counts() registry.Counts
}

// ConnectionCounter tells how many connections are open and how many may
// be; a *server.Server is one.
type ConnectionCounter interface {
	Connections() int
	MaxConns() int
}

// Register registers the metrics with reg, together with the gauge of
// sessions by state that sessions answers at each scrape, and, if
// sessions is also a ConnectionCounter, the gauges of open connections
// and of their limit.
func (m *Metrics) Register(reg prometheus.Registerer, sessions SessionCounter) error {
	if sessions == nil {
		return errors.New("metrics: Register needs a SessionCounter")
	}
	cs := []prometheus.Collector{
		m.beats, m.rtt, m.events, m.lateness, m.rejected, m.authFailures, m.stalls, m.stallSeconds, m.stallHeld,
		m.storeUp, m.storeErrors,
		newSessionsCollector(sessions),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pulse_build_info",
			Help:        "Always 1; the version label says which pulse is running.",
			ConstLabels: prometheus.Labels{"version": pulse.Version},
		}, func() float64 { return 1 }),
	}
	if cc, ok := sessions.(ConnectionCounter); ok {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pulse_connections",
				Help: "Connections open, registered or not.",
			}, func() float64 { return float64(cc.Connections()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pulse_connections_max",
				Help: "The most connections the server holds open (--max-conns); 0 for no limit.",
			}, func() float64 { return float64(max(cc.MaxConns(), 0)) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: register: %w", err)
		}
	}
	return nil
}

// Beat counts a beat and its round-trip time, if reported.
func (m *Metrics) Beat(rtt time.Duration) {
	m.beats.Inc()
	if rtt > 0 {
		m.rtt.Observe(rtt.Seconds())
	}
}

// Rejected counts a connection ended with ERR code.
func (m *Metrics) Rejected(code wire.Code) {
	m.rejected.WithLabelValues(string(code)).Inc()
}

// Event counts an event and, for a judgment, how late it came; for a
// stall of the server, how long it was and how many judgments it held.
func (m *Metrics) Event(ev pulse.Event) {
	m.events.WithLabelValues(ev.Kind.String(), ev.Reason).Inc()
	if st := ev.Stall; st != nil {
		m.stalls.Inc()
		m.stallSeconds.Observe(st.Length.Seconds())
		m.stallHeld.Add(float64(st.Overdue))
	}
	if !ev.Deadline.IsZero() {
		m.lateness.WithLabelValues(ev.Kind.String()).Observe(max(ev.Time.Sub(ev.Deadline), 0).Seconds())
	}
}

// StoreUp records whether the cluster's store is reachable.
func (m *Metrics) StoreUp(up bool) {
	if up {
		m.storeUp.Set(1)
	} else {
		m.storeUp.Set(0)
	}
}

// StoreError counts a failed round trip to the cluster's store.
func (m *Metrics) StoreError() { m.storeErrors.Inc() }

// sessionsCollector reports the live sessions by state at each scrape.
type sessionsCollector struct {
	src  SessionCounter
	desc *prometheus.Desc
}

func newSessionsCollector(src SessionCounter) *sessionsCollector {
	return &sessionsCollector{src: src, desc: prometheus.NewDesc("pulse_sessions",
		"Live sessions by state.", []string{"state"}, nil)}
}

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.src.Counts()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.Alive), pulse.StateAlive.String())
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.Suspect), pulse.StateSuspect.String())
}

// AuthFailed counts a refused authentication by its reason; it implements
// server.AuthObserver.
func (m *Metrics) AuthFailed(reason string) {
	m.authFailures.WithLabelValues(reason).Inc()
}

// authFailuresHelp is the help of pulse_auth_failures_total.
const authFailuresHelp = "Connections refused for authentication, by reason: missing_token, malformed, bad_alg, bad_signature, expired, not_yet_valid, no_expiry, sub_mismatch, bad_audience, bad_issuer, invalid_claims, no_client_cert, cert_name_mismatch, tls_handshake (a TLS handshake failed or timed out), other."
