package faulttest

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/internal/faultproxy"
	"github.com/pulsehq/pulse/server"
)

// patience bounds every wait for something that must happen: a way to fail
// instead of hanging, not a timing assertion.
const patience = 30 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// events records a server's events as they come, for waits on them.
type events struct {
	mu   sync.Mutex
	all  []pulse.Event
	more chan struct{} // closed and replaced at every event
}

// rig is a server, its event record and a proxy in front of it.
type rig struct {
	srv    *server.Server
	addr   string // the server's own address
	proxy  *faultproxy.Proxy
	events *events
}

// newRig starts a server with cfg on 127.0.0.1 and a proxy to it.
func newRig(t *testing.T, cfg server.Config) *rig {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	ev := &events{more: make(chan struct{})}
	sub := srv.Subscribe(1 << 16)
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		for e := range sub.C() {
			ev.mu.Lock()
			ev.all = append(ev.all, e)
			close(ev.more)
			ev.more = make(chan struct{})
			ev.mu.Unlock()
		}
	}()
	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		sub.Close()
		<-recorded
		srv.Close()
		<-served
	})
	return &rig{srv: srv, addr: ln.Addr().String(), proxy: p, events: ev}
}

// wait returns the first event from index from on that match says is the
// one, and its index, or fails the test after patience.
func (e *events) wait(t *testing.T, from int, match func(pulse.Event) bool) (pulse.Event, int) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		for i := from; i < len(e.all); i++ {
			if match(e.all[i]) {
				ev := e.all[i]
				e.mu.Unlock()
				return ev, i
			}
		}
		from = len(e.all)
		more := e.more
		e.mu.Unlock()
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("no such event within %v", patience)
		}
	}
}

// since returns the events from index from on about the session name.
func (e *events) since(from int, name string) []pulse.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []pulse.Event
	for _, ev := range e.all[min(from, len(e.all)):] {
		if ev.Session.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

// count is how many events have been recorded.
func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.all)
}

func is(kind pulse.EventKind, name string) func(pulse.Event) bool {
	return func(ev pulse.Event) bool { return ev.Kind == kind && ev.Session.Name == name }
}

// statuses records a client's status changes with the time each came.
type statuses struct {
	mu   sync.Mutex
	all  []client.Status
	more chan struct{}
}

func newStatuses() *statuses { return &statuses{more: make(chan struct{})} }

// record is the client's OnStatus: Since is when the change happened.
func (s *statuses) record(st client.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
	close(s.more)
	s.more = make(chan struct{})
}

// wait returns the first status from index from on that match accepts.
func (s *statuses) wait(t *testing.T, from int, match func(client.Status) bool) (client.Status, int) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for i := from; i < len(s.all); i++ {
			if match(s.all[i]) {
				st := s.all[i]
				s.mu.Unlock()
				return st, i
			}
		}
		from = len(s.all)
		more := s.more
		s.mu.Unlock()
		select {
		case <-more:
		case <-deadline.C:
			t.Fatalf("no such client status within %v", patience)
		}
	}
}

func (s *statuses) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// dial connects a client through the rig's proxy and waits until it is
// registered.
func (r *rig) dial(t *testing.T, name string, st *statuses, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := client.Dial(ctx, r.proxy.Addr(), name, append(opts, client.OnStatus(st.record))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// within fails the test unless lo <= d <= hi.
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s after %v: want %v to %v", what, d.Round(time.Millisecond), lo, hi)
	} else {
		t.Logf("%s after %v (bound %v to %v)", what, d.Round(time.Millisecond), lo, hi)
	}
}
