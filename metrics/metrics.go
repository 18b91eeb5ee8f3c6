// Package metrics measures a pulse server for Prometheus: sessions by
// state, beats, session events by kind and reason, how late deaths are
// declared, round-trip times, and connections rejected by ERR code.
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
}

// LatenessBuckets are the bounds, in seconds, of the detection-lateness
// histogram: a judgment is meant to come within milliseconds of its
// deadline, and a stall shows as seconds.
var LatenessBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}

// RTTBuckets are the bounds, in seconds, of the round-trip-time histogram,
// from a loopback client to one across the world.
var RTTBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

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
			Help: "Session events by kind (joined, suspect, recovered, left, dead, replaced, kicked) and reason.",
		}, []string{"kind", "reason"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulse_detection_lateness_seconds",
			Help:    "Time from a session's deadline to the moment it was declared suspect or dead.",
			Buckets: LatenessBuckets,
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_connections_rejected_total",
			Help: "Connections the server ended with ERR <code>: refused at HELLO, cut for a protocol error, or ended by the server (timeout, replaced, kicked, shutdown).",
		}, []string{"code"}),
	}
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

// Register registers the metrics with reg, together with the gauge of
// sessions by state that sessions answers at each scrape.
func (m *Metrics) Register(reg prometheus.Registerer, sessions SessionCounter) error {
	if sessions == nil {
		return errors.New("metrics: Register needs a SessionCounter")
	}
	cs := []prometheus.Collector{
		m.beats, m.rtt, m.events, m.lateness, m.rejected,
		newSessionsCollector(sessions),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pulse_build_info",
			Help:        "Always 1; the version label says which pulse is running.",
			ConstLabels: prometheus.Labels{"version": pulse.Version},
		}, func() float64 { return 1 }),
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

// Event counts a session event and, for a judgment, how late it came.
func (m *Metrics) Event(ev pulse.Event) {
	m.events.WithLabelValues(ev.Kind.String(), ev.Reason).Inc()
	if !ev.Deadline.IsZero() {
		m.lateness.WithLabelValues(ev.Kind.String()).Observe(max(ev.Time.Sub(ev.Deadline), 0).Seconds())
	}
}

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
