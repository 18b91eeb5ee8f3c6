package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/server"
)

// patience bounds every wait: a way to fail instead of hanging, not a
// timing assertion.
const patience = 10 * time.Second

var quiet = slog.New(slog.DiscardHandler)

type testServer struct {
	*server.Server
	addr   string
	events <-chan pulse.Event
}

func serve(t *testing.T, addr string) *testServer {
	t.Helper()
	srv, err := server.New(server.Config{Logger: quiet, Timing: pulse.Timing{Interval: 100 * time.Millisecond, Misses: 5}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sub := srv.Subscribe(0)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &testServer{Server: srv, addr: ln.Addr().String(), events: sub.C()}
}

// await returns the next event of the given kind for name.
func (ts *testServer) await(t *testing.T, kind pulse.EventKind, name string) pulse.Event {
	t.Helper()
	timeout := time.After(patience)
	for {
		select {
		case ev, ok := <-ts.events:
			if !ok {
				t.Fatalf("events closed while waiting for %s %s", kind, name)
			}
			if ev.Kind == kind && ev.Session.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", kind, name)
		}
	}
}

func TestDialBeatClose(t *testing.T) {
	ts := serve(t, "127.0.0.1:0")
	c, err := client.Dial(context.Background(), ts.addr, "web-1", client.WithMeta(map[string]string{"role": "web"}))
	if err != nil {
		t.Fatal(err)
	}
	joined := ts.await(t, pulse.EventJoined, "web-1")
	if st := c.Status(); st.SessionID != joined.Session.ID || st.Interval != 100*time.Millisecond || joined.Session.Meta["role"] != "web" {
		t.Fatalf("client status %+v, joined %+v", st, joined.Session)
	}
	// It beats: wait until the server has counted three beats and measured
	// a round trip.
	for deadline := time.Now().Add(patience); ; {
		if s, _ := ts.Session("web-1"); s.Beats >= 3 && s.RTT > 0 && s.State == pulse.StateAlive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not count three beats")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	if left := ts.await(t, pulse.EventLeft, "web-1"); left.Reason != pulse.ReasonBye {
		t.Fatalf("left with %q, want bye", left.Reason)
	}
}

// TestReconnectAfterServerRestart: the server shuts down and a new one
// comes up on the same address; the client notices, backs off, and
// registers with the new server by itself.
func TestReconnectAfterServerRestart(t *testing.T) {
	first := serve(t, "127.0.0.1:0")
	states := make(chan client.Status, 100)
	c, err := client.Dial(context.Background(), first.addr, "agent",
		client.WithBackoff(10*time.Millisecond, 50*time.Millisecond),
		client.OnStatus(func(s client.Status) { states <- s }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	firstID := first.await(t, pulse.EventJoined, "agent").Session.ID

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The client heard BYE and backs off; with no server it keeps failing.
	sawBye, failures := false, 0
	for failures < 3 {
		select {
		case s := <-states:
			if s.State == client.StateBackoff {
				if errors.Is(s.Err, client.ErrServerBye) {
					sawBye = true
				} else {
					failures++
				}
			}
		case <-time.After(patience):
			t.Fatal("the client did not try again")
		}
	}
	if !sawBye {
		t.Fatal("the client did not report the server's BYE")
	}

	second := serve(t, first.addr)
	rejoined := second.await(t, pulse.EventJoined, "agent")
	if rejoined.Session.ID == firstID {
		t.Fatal("same session ID from a new server")
	}
	for {
		select {
		case s := <-states:
			if s.State == client.StateConnected {
				if s.SessionID != rejoined.Session.ID {
					t.Fatalf("client connected as %s, server says %s", s.SessionID, rejoined.Session.ID)
				}
				return
			}
		case <-time.After(patience):
			t.Fatal("no connected status")
		}
	}
}

// TestReplacedClientStops: two clients with one name; the newest wins and
// the older stops for good instead of fighting back.
func TestReplacedClientStops(t *testing.T) {
	ts := serve(t, "127.0.0.1:0")
	older, err := client.Dial(context.Background(), ts.addr, "twin")
	if err != nil {
		t.Fatal(err)
	}
	defer older.Close()
	newer, err := client.Dial(context.Background(), ts.addr, "twin")
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	select {
	case <-older.Done():
	case <-time.After(patience):
		t.Fatal("the replaced client did not stop")
	}
	if older.Status().State != client.StateClosed || !errors.Is(older.Err(), client.ErrReplaced) {
		t.Fatalf("replaced client: %v, %v", older.Status().State, older.Err())
	}
	if newer.Status().State != client.StateConnected {
		t.Fatalf("newer client: %v", newer.Status().State)
	}
}

// TestAskForAnInterval: a real server grants an interval asked for within
// its bounds (here 100 ms, its own, to 5 min), and the nearer bound for
// one outside them; the client beats at what was granted.
func TestAskForAnInterval(t *testing.T) {
	ts := serve(t, "127.0.0.1:0")
	for _, tt := range []struct {
		name           string
		asked, granted time.Duration
	}{
		{"slow", 250 * time.Millisecond, 250 * time.Millisecond},
		{"eager", 10 * time.Millisecond, 100 * time.Millisecond},
	} {
		c, err := client.Dial(context.Background(), ts.addr, tt.name, client.WithInterval(tt.asked))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		joined := ts.await(t, pulse.EventJoined, tt.name)
		if st := c.Status(); st.Interval != tt.granted || st.Timeout != 5*tt.granted || joined.Session.Interval != tt.granted {
			t.Fatalf("%s asked for %v: client %v (timeout %v), server %v; want %v", tt.name, tt.asked, st.Interval, st.Timeout, joined.Session.Interval, tt.granted)
		}
	}
}
