package server

import (
	"fmt"
	"net"
	"testing"

	"github.com/pulsehq/pulse"
)

// TestChurn opens and ends hundreds of connections in every way while one
// session beats: each one hears only its own answers (file descriptors are
// reused at once on the event loop), every session that joins leaves with
// the right reason, and the steady session never notices.
func TestChurn(t *testing.T) {
	ts := startServer(t, Config{})
	steady := ts.dial(t)
	steady.register(t, ts, "steady")
	if testTransport == TransportEventLoop {
		ts.mu.Lock()
		loop := ts.loop
		ts.mu.Unlock()
		if loop == nil {
			t.Fatal("the event loop transport runs no event loop")
		}
	}

	const n = 300
	wantLeft := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("churn-%03d", i)
		c := ts.dial(t)
		c.register(t, ts, name)
		c.say(t, fmt.Sprintf("BEAT %d", i))
		c.hear(t, fmt.Sprintf("ACK %d", i))
		switch i % 3 {
		case 0:
			c.say(t, "BYE done")
			wantLeft[name] = pulse.ReasonBye
		case 1:
			c.Conn.(*net.TCPConn).SetLinger(0) // a reset, not a FIN
			c.Close()
			wantLeft[name] = pulse.ReasonError
		case 2:
			c.Close()
			wantLeft[name] = pulse.ReasonClosed
		}
		ev := ts.next(t)
		if ev.Kind != pulse.EventLeft || ev.Session.Name != name {
			t.Fatalf("event %s %s, want %s to leave", ev.Kind, ev.Session.Name, name)
		}
		if want := wantLeft[name]; ev.Reason != want && !(want == pulse.ReasonError && ev.Reason == pulse.ReasonClosed) {
			t.Fatalf("%s left with %q, want %q", name, ev.Reason, want)
		}
		if i%50 == 0 {
			steady.say(t, fmt.Sprintf("BEAT %d", i))
			steady.hear(t, fmt.Sprintf("ACK %d", i))
		}
	}
	if got := ts.Sessions(); len(got) != 1 || got[0].Name != "steady" || got[0].State != pulse.StateAlive {
		t.Fatalf("sessions after the churn: %+v", got)
	}
	ts.noEvents(t)
}
