package faulttest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/internal/faultproxy"
	"github.com/pulsehq/pulse/server"
)

// margin is how late past its deadline a judgment may come on a loaded
// machine running the race detector: the server declares a death within a
// few milliseconds of its deadline, the client its loss at its read
// deadline; the rest is scheduling.
const margin = 300 * time.Millisecond

// short is the fault tests' timing: a beat every 100 ms, suspect after
// 150 ms of silence, dead after 500 ms.
var short = pulse.Timing{Interval: 100 * time.Millisecond, Misses: 5}

// A partition both ways: each side judges the other by its own timeout,
// counted from the last line it had, which came at most an interval before
// the partition; once healed, the client is back within one handshake
// timeout (a HELLO lost in the partition) and its longest backoff.
func TestBlackholeBothWaysThenHeal(t *testing.T) {
	r := newRig(t, server.Config{Timing: short})
	timeout := short.Interval * time.Duration(short.Misses)
	const handshake, minBackoff, maxBackoff = 300 * time.Millisecond, 50 * time.Millisecond, 400 * time.Millisecond
	st := newStatuses()
	c := r.dial(t, "edge-1", st, client.WithBackoff(minBackoff, maxBackoff), client.WithHandshakeTimeout(handshake))
	if got := c.Status().Timeout; got != timeout {
		t.Fatalf("granted timeout %v, want %v", got, timeout)
	}
	from, seen := r.events.count(), st.count()

	r.proxy.Blackhole(faultproxy.Both, true)
	t0 := time.Now()

	// The server: dead, reason timeout, one timeout after the last beat
	// that crossed before the partition.
	dead, _ := r.events.wait(t, from, is(pulse.EventDead, "edge-1"))
	if dead.Reason != pulse.ReasonTimeout {
		t.Errorf("dead with reason %q, want %q", dead.Reason, pulse.ReasonTimeout)
	}
	within(t, "server declared the client dead", dead.Time.Sub(t0), timeout-short.Interval-10*time.Millisecond, timeout+margin)
	for _, ev := range r.events.since(from, "edge-1") {
		if ev.Kind != pulse.EventSuspect && ev.Seq != dead.Seq {
			t.Errorf("event %v %s before the death: the partition must look like silence, not a close", ev.Kind, ev.Reason)
		}
	}

	// The client: the server lost, one timeout after the last ACK.
	lost, _ := st.wait(t, seen, func(s client.Status) bool { return s.State == client.StateBackoff })
	if !errors.Is(lost.Err, client.ErrServerLost) {
		t.Errorf("client left the session with %v, want ErrServerLost", lost.Err)
	}
	within(t, "client declared the server lost", lost.Since.Sub(t0), timeout-short.Interval-10*time.Millisecond, timeout+margin)

	// Heal once both have judged, with the client retrying into the
	// partition meanwhile.
	from, seen = r.events.count(), st.count()
	r.proxy.Heal()
	t1 := time.Now()
	joined, _ := r.events.wait(t, from, is(pulse.EventJoined, "edge-1"))
	within(t, "client registered again", joined.Time.Sub(t1), 0, handshake+maxBackoff+margin)
	back, _ := st.wait(t, seen, func(s client.Status) bool { return s.State == client.StateConnected })
	if back.SessionID != joined.Session.ID {
		t.Errorf("client connected as %s, the server's joined event says %s", back.SessionID, joined.Session.ID)
	}
}

// Latency and jitter well below the timeout, switched on and off in
// spikes: no suspect, no death, and the client never gives up the session.
func TestLatencyAndJitterBelowTheTimeout(t *testing.T) {
	// Suspect after 600 ms of silence, dead after 1 s; the spikes add at
	// most 250 ms each way (a 500 ms round trip, half the timeout), so a
	// gap between two beats at the server is at most 100 + 250 ms, and
	// between two ACKs at the client at most 100 + 500 ms.
	timing := pulse.Timing{Interval: 100 * time.Millisecond, Misses: 10, SuspectAfter: 600 * time.Millisecond}
	r := newRig(t, server.Config{Timing: timing})
	const latency, jitter = 200 * time.Millisecond, 50 * time.Millisecond
	st := newStatuses()
	c := r.dial(t, "steady-1", st)
	from, seen := r.events.count(), st.count()
	beats0 := c.Status().Beats

	for spike := range 6 {
		if spike%2 == 0 {
			r.proxy.SetLatency(faultproxy.Both, latency, jitter)
			// The client measures a round trip only when the ACK of its
			// latest beat comes before the next beat: a probe shows
			// the latency took effect.
			if rtt := r.probe(t, fmt.Sprintf("probe-%d", spike)); rtt < 2*latency {
				t.Fatalf("HELLO to WELCOME took %v through %v each way", rtt, latency)
			}
		} else {
			r.proxy.SetLatency(faultproxy.Both, 0, jitter)
		}
		// Hold each setting for five beats' round trips, as the client
		// counts them.
		want := c.Status().Beats + 5
		deadline := time.Now().Add(patience)
		for c.Status().Beats < want {
			if time.Now().After(deadline) {
				t.Fatalf("client stuck at %d beats", c.Status().Beats)
			}
			time.Sleep(10 * time.Millisecond) // polling the client's status
		}
	}
	r.proxy.SetLatency(faultproxy.Both, 0, 0)

	if evs := r.events.since(from, "steady-1"); len(evs) > 0 {
		t.Errorf("events under latency below the timeout: %v %s, … (%d)", evs[0].Kind, evs[0].Reason, len(evs))
	}
	if n := st.count() - seen; n > 0 {
		t.Errorf("client changed state %d times under latency below the timeout", n)
	}
	if s, ok := r.srv.Session("steady-1"); !ok || s.State != pulse.StateAlive {
		t.Errorf("session %+v after the spikes, want alive", s)
	}
	t.Logf("%d beats through the spikes", c.Status().Beats-beats0)
}

// A cut (both sockets reset) is a close, not a silence: the server sees
// the session leave at once, and the client reconnects at its first
// backoff.
func TestCutIsSeenAtOnce(t *testing.T) {
	r := newRig(t, server.Config{Timing: pulse.Timing{Interval: time.Second, Misses: 5}})
	st := newStatuses()
	r.dial(t, "cut-1", st, client.WithBackoff(50*time.Millisecond, 100*time.Millisecond))
	from := r.events.count()
	t0 := time.Now()
	if n := r.proxy.Cut(); n != 1 {
		t.Fatalf("cut %d connections, want 1", n)
	}
	left, _ := r.events.wait(t, from, is(pulse.EventLeft, "cut-1"))
	within(t, "server saw the cut", left.Time.Sub(t0), 0, margin)
	joined, _ := r.events.wait(t, from, is(pulse.EventJoined, "cut-1"))
	within(t, "client registered again", joined.Time.Sub(t0), 0, 100*time.Millisecond+margin)
}

// probe registers name through the proxy, measures the time from HELLO to
// WELCOME, and leaves.
func (r *rig) probe(t *testing.T, name string) time.Duration {
	t.Helper()
	nc, err := net.Dial("tcp", r.proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(patience))
	start := time.Now()
	if _, err := fmt.Fprintf(nc, "HELLO %s\n", name); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	rtt := time.Since(start)
	if !strings.HasPrefix(line, "WELCOME ") {
		t.Fatalf("probe: %q", line)
	}
	fmt.Fprintf(nc, "BYE probe\n")
	return rtt
}

// A server that refuses connections (as a host with no one listening):
// the client retries with a growing backoff, and once connections are
// accepted again it is back within its longest backoff.
func TestRefusedThenAccepted(t *testing.T) {
	r := newRig(t, server.Config{Timing: short})
	const minBackoff, maxBackoff = 50 * time.Millisecond, 300 * time.Millisecond
	st := newStatuses()
	r.dial(t, "door-1", st, client.WithBackoff(minBackoff, maxBackoff))
	seen := st.count()
	r.proxy.Refuse(true)
	r.proxy.Cut()
	// Failures 1, 2, 3: waits of about 50, 100 and 200 ms, then the
	// longest, 300 ms.
	st.wait(t, seen, func(s client.Status) bool { return s.State == client.StateBackoff && s.Attempt >= 4 })
	if got := r.proxy.Stats().Refused; got < 3 {
		t.Fatalf("%d connections refused, want every retry", got)
	}
	from := r.events.count()
	r.proxy.Refuse(false)
	t1 := time.Now()
	joined, _ := r.events.wait(t, from, is(pulse.EventJoined, "door-1"))
	within(t, "client registered again", joined.Time.Sub(t1), 0, maxBackoff+margin)
}
