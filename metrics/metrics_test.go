package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/wire"
)

type counts registry.Counts

func (c counts) Counts() registry.Counts { return registry.Counts(c) }

func TestMetrics(t *testing.T) {
	m := New()
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg, counts{Alive: 3, Suspect: 1}); err != nil {
		t.Fatal(err)
	}
	m.Beat(0)
	m.Beat(2 * time.Millisecond)
	m.Beat(300 * time.Microsecond)
	m.Rejected(wire.CodeBadCommand)
	m.Rejected(wire.CodeBadCommand)
	m.Rejected(wire.CodeKicked)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m.Event(pulse.Event{Kind: pulse.EventJoined, Reason: pulse.ReasonHello, Time: at})
	m.Event(pulse.Event{Kind: pulse.EventSuspect, Reason: pulse.ReasonSilent, Time: at, Deadline: at.Add(-1500 * time.Microsecond)})
	m.Event(pulse.Event{Kind: pulse.EventDead, Reason: pulse.ReasonTimeout, Time: at, Deadline: at.Add(-7 * time.Millisecond)})
	m.Event(pulse.Event{Kind: pulse.EventLeft, Reason: pulse.ReasonBye, Time: at})
	m.Event(pulse.Event{Kind: pulse.EventStall, Reason: pulse.ReasonLateWakeup, Time: at,
		Stall: &pulse.Stall{Length: 20 * time.Second, Overdue: 1000, Grace: 2 * time.Second}})
	m.Event(pulse.Event{Kind: pulse.EventStall, Reason: pulse.ReasonLateWakeup, Time: at,
		Stall: &pulse.Stall{Length: 700 * time.Millisecond, Overdue: 3, Grace: 2 * time.Second}})

	want := `
# HELP pulse_beats_total Heartbeats received from registered sessions.
# TYPE pulse_beats_total counter
pulse_beats_total 3
# HELP pulse_connections_rejected_total Connections the server ended with ERR <code>: refused at HELLO, cut for a protocol error, refused or cut by a limit (too_many_connections, rate_limited, slow_consumer, counted even when the client could not be told), or ended by the server (timeout, replaced, kicked, shutdown).
# TYPE pulse_connections_rejected_total counter
pulse_connections_rejected_total{code="bad_command"} 2
pulse_connections_rejected_total{code="kicked"} 1
# HELP pulse_events_total Events by kind (joined, suspect, recovered, left, dead, replaced, kicked, and stall for the server's own) and reason.
# TYPE pulse_events_total counter
pulse_events_total{kind="dead",reason="timeout"} 1
pulse_events_total{kind="joined",reason="hello"} 1
pulse_events_total{kind="left",reason="bye"} 1
pulse_events_total{kind="stall",reason="late_wakeup"} 2
pulse_events_total{kind="suspect",reason="silent"} 1
# HELP pulse_server_stall_held_judgments_total Sessions past a suspect or dead deadline when a stall was noticed: judgments held until the server had read what arrived during the stall.
# TYPE pulse_server_stall_held_judgments_total counter
pulse_server_stall_held_judgments_total 1003
# HELP pulse_server_stalls_total Stalls of the server itself that it noticed (its timer fired the stall threshold or more late); it held suspect and dead judgments after each.
# TYPE pulse_server_stalls_total counter
pulse_server_stalls_total 2
# HELP pulse_sessions Live sessions by state.
# TYPE pulse_sessions gauge
pulse_sessions{state="alive"} 3
pulse_sessions{state="suspect"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"pulse_beats_total", "pulse_connections_rejected_total", "pulse_events_total", "pulse_sessions",
		"pulse_server_stalls_total", "pulse_server_stall_held_judgments_total"); err != nil {
		t.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := map[string]struct {
		count uint64
		sum   float64
	}{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				key := mf.GetName()
				for _, l := range mt.GetLabel() {
					key += "/" + l.GetValue()
				}
				hist[key] = struct {
					count uint64
					sum   float64
				}{h.GetSampleCount(), h.GetSampleSum()}
			}
		}
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	if h := hist["pulse_rtt_seconds"]; h.count != 2 || !near(h.sum, 0.0023) {
		t.Errorf("rtt histogram %+v: want the 2 reported round trips, 2.3 ms in all", h)
	}
	if h := hist["pulse_detection_lateness_seconds/dead"]; h.count != 1 || !near(h.sum, 0.007) {
		t.Errorf("dead lateness %+v", h)
	}
	if h := hist["pulse_detection_lateness_seconds/suspect"]; h.count != 1 || !near(h.sum, 0.0015) {
		t.Errorf("suspect lateness %+v", h)
	}
	if h := hist["pulse_server_stall_seconds"]; h.count != 2 || !near(h.sum, 20.7) {
		t.Errorf("stall histogram %+v: want the 2 stalls, 20.7 s in all", h)
	}
	if _, ok := hist["pulse_detection_lateness_seconds/stall"]; ok {
		t.Error("a stall counted as a judgment's lateness")
	}
	if _, ok := hist["pulse_build_info"]; ok || testutil.CollectAndCount(m.events) != 5 {
		t.Error("unexpected series")
	}
}

func TestRegisterTwiceFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New()
	if err := m.Register(reg, counts{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(reg, counts{}); err == nil {
		t.Fatal("registering the same metrics twice succeeded")
	}
	if err := New().Register(prometheus.NewRegistry(), nil); err == nil {
		t.Fatal("Register without a session counter succeeded")
	}
}

// conns is a session counter that also counts connections.
type conns struct {
	counts
	open, limit int
}

func (c conns) Connections() int { return c.open }
func (c conns) MaxConns() int    { return c.limit }

// TestConnectionGauges: a server that counts its connections gets the
// gauges of open connections and of their limit; no limit shows as 0.
func TestConnectionGauges(t *testing.T) {
	for _, tt := range []struct {
		limit int
		want  string
	}{{20_000, "20000"}, {-1, "0"}} {
		m := New()
		reg := prometheus.NewPedanticRegistry()
		if err := m.Register(reg, conns{open: 42, limit: tt.limit}); err != nil {
			t.Fatal(err)
		}
		m.Rejected(wire.CodeTooManyConnections)
		want := `
# HELP pulse_connections Connections open, registered or not.
# TYPE pulse_connections gauge
pulse_connections 42
# HELP pulse_connections_max The most connections the server holds open (--max-conns); 0 for no limit.
# TYPE pulse_connections_max gauge
pulse_connections_max ` + tt.want + "\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pulse_connections", "pulse_connections_max"); err != nil {
			t.Fatal(err)
		}
	}
}
