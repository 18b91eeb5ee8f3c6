package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/internal/redistest"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/server"
	"github.com/pulsehq/pulse/wire"
)

// Three nodes show one view: every node lists every session with its
// node, streams every node's events in one order, and an event stream
// resumes on another node from an ID the first gave.
func TestOneViewAcrossThreeNodes(t *testing.T) {
	rs := redistest.Start(t)
	a, b, c := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b"), startNode(t, rs.URL(), "c")
	eventually(t, "three nodes in the cluster", func() (bool, string) {
		cl := clusterOf(t, c)
		return cl.Store == "ok" && len(cl.Nodes) == 3, fmt.Sprintf("%+v", cl)
	})
	wa, wc := watch(t, a, ""), watch(t, c, "")

	var want []string
	for _, n := range []*testNode{a, b, c} {
		for i := range 2 {
			name := fmt.Sprintf("%s-client-%d", n.name, i)
			dial(t, n.hb, name)
			want = append(want, name+"@"+n.name)
		}
	}
	slices.Sort(want)
	viewIs(t, want, a, b, c)

	// The same six joined events, in the same order and with the same
	// IDs, on a and on c.
	joined := func(w *watcher) func() (bool, string) {
		return func() (bool, string) {
			ev := w.events()
			return count(ev, pulse.EventJoined, pulse.ReasonHello, "") == 6, describe(ev)
		}
	}
	eventually(t, "six joined events on a", joined(wa))
	eventually(t, "six joined events on c", joined(wc))
	ea, ec := wa.events(), wc.events()
	ids := func(ms []httpapi.Message) (out []string) {
		for _, m := range ms {
			out = append(out, m.ID+" "+m.Event.Session.Name+"@"+m.Event.Session.Node)
		}
		return out
	}
	if !slices.Equal(ids(ea), ids(ec)) {
		t.Fatalf("the nodes stream different events:\na: %s\nc: %s", describe(ea), describe(ec))
	}

	// Resume on b from the third event a gave: ready, then events 4 to 6.
	wb := watch(t, b, ea[2].ID)
	eventually(t, "b resumes after the third event", func() (bool, string) {
		return len(wb.events()) == 3, describe(wb.all())
	})
	if first := wb.all()[0]; first.Type != "ready" {
		t.Fatalf("resuming on b from a's ID %s began with %s (%s), want ready", ea[2].ID, first.Type, first.Reason)
	}
	if got := ids(wb.events()); !slices.Equal(got, ids(ea[3:])) {
		t.Fatalf("resumed on b: %v, want %v", got, ids(ea[3:]))
	}

	cl := clusterOf(t, b)
	if cl.Store != "ok" || cl.Node != "b" || len(cl.Nodes) != 3 {
		t.Fatalf("GET /v1/cluster on b = %+v", cl)
	}
	for _, n := range cl.Nodes {
		if n.Addr == "" || n.LastSeen.IsZero() {
			t.Errorf("node %+v: want its address and when it was last seen", n)
		}
	}
}

// A HELLO of a name live on another node wins there too: the old client
// gets ERR replaced, and there is exactly one replaced event.
func TestDuplicateNameAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	a, b, c := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b"), startNode(t, rs.URL(), "c")
	wc := watch(t, c, "")
	old := dial(t, a.hb, "dup")
	viewIs(t, []string{"dup@a"}, a, b, c)
	dial(t, b.hb, "dup")

	select {
	case <-old.Done():
	case <-time.After(patience):
		t.Fatal("the old session on a was not ended")
	}
	if code := wire.CodeOf(old.Err()); code != wire.CodeReplaced {
		t.Fatalf("old client ended with %v, want ERR replaced", old.Err())
	}
	viewIs(t, []string{"dup@b"}, a, b, c)
	// A marker after the replacement: once c has it, it has every event of
	// the replacement.
	dial(t, a.hb, "marker")
	eventually(t, "the marker on c", func() (bool, string) {
		ev := wc.events()
		return count(ev, pulse.EventJoined, pulse.ReasonHello, "marker") == 1, describe(ev)
	})
	ev := wc.events()
	if n := count(ev, pulse.EventReplaced, pulse.ReasonReplaced, "dup"); n != 1 {
		t.Fatalf("%d replaced events, want 1: %s", n, describe(ev))
	}
	for _, m := range ev {
		if m.Event.Kind == pulse.EventReplaced && m.Event.Session.Node != "a" {
			t.Fatalf("the replaced session is of node %q, want a: %s", m.Event.Session.Node, describe(ev))
		}
	}
	if n := count(ev, pulse.EventJoined, pulse.ReasonHello, "dup"); n != 2 {
		t.Fatalf("%d joined events of dup, want 2: %s", n, describe(ev))
	}
}

// DELETE on one node kicks a session another node holds.
func TestKickAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")
	victim := dial(t, a.hb, "victim")
	viewIs(t, []string{"victim@a"}, a, b)

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	s, err := b.c.Kick(ctx, "victim", "test kick")
	if err != nil {
		t.Fatalf("kick on b: %v", err)
	}
	if s.Name != "victim" || s.Node != "a" {
		t.Fatalf("kick answered %+v, want victim of node a", s)
	}
	select {
	case <-victim.Done():
	case <-time.After(patience):
		t.Fatal("the kicked client was not ended")
	}
	if code := wire.CodeOf(victim.Err()); code != wire.CodeKicked {
		t.Fatalf("client ended with %v, want ERR kicked", victim.Err())
	}
	viewIs(t, nil, a, b)

	var apiErr *httpapi.Error
	if _, err := b.c.Kick(ctx, "victim", ""); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Fatalf("kick of a session no node holds: %v, want 404", err)
	}
}

// A second process given a name a live node has is refused: it does not
// take the first's sessions (they stay in every node's view, with no
// event), and New says why. Once the first leaves, the name is free.
func TestNodeNameInUse(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")
	dial(t, a.hb, "a1")
	want := []string{"a1@a"}
	viewIs(t, want, a, b)
	wb := watch(t, b, "")

	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: interval, Misses: 10}, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dup, err := redis.New(srv, redis.Config{URL: rs.URL(), Node: "a", TTL: ttl, Interval: interval, Logger: logger()})
	if !errors.Is(err, redis.ErrNodeInUse) {
		if dup != nil {
			srv.Close() // the node's Close waits for its server's end
			_ = dup.Close(context.Background())
		}
		t.Fatalf("a second node named a: %v, want ErrNodeInUse", err)
	}
	// Past a renewal of a's, its sessions are still there, and no event
	// came of the second process.
	eventually(t, "a renewing after the second process was refused", func() (bool, string) {
		for _, n := range clusterOf(t, b).Nodes {
			if n.Name == "a" && n.LastSeen.Sub(n.Since) > ttl {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", clusterOf(t, b))
	})
	viewIs(t, want, a, b)
	if ev := wb.events(); len(ev) != 0 {
		t.Errorf("events after the second process of a: %s", describe(ev))
	}

	// a leaves cleanly: the name is free at once.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	if err := a.node.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := redis.New(srv, redis.Config{URL: rs.URL(), Node: "a", TTL: ttl, Interval: interval, Logger: logger()})
	if err != nil {
		t.Fatalf("a new node a after a left: %v", err)
	}
	srv.Close()
	if err := again.Close(ctx); err != nil {
		t.Error(err)
	}
}

// A node restarted under its name at once after a crash finds its previous
// process's lease in the store: it waits for that lease to lapse, and
// joins, rather than being refused as a duplicate.
func TestNodeRestartedAfterACrashWaitsForItsOldLease(t *testing.T) {
	rs := redistest.Start(t)
	// The lease a killed process of the name left: another instance's,
	// lapsing within the ttl.
	if _, err := rs.Do("SET", "pulse:lease:a", "a-process-killed-with-sigkill", "PX", strconv.FormatInt(ttl.Milliseconds(), 10)); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: interval, Misses: 10}, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := redis.New(srv, redis.Config{URL: rs.URL(), Node: "a", TTL: ttl, Interval: interval, Logger: logger()})
	if err != nil {
		srv.Close()
		t.Fatalf("restarted node a: %v, want it to join once the old lease lapsed", err)
	}
	took := time.Since(start)
	srv.Close()
	if err := n.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if took < ttl/2 || took > ttl+ttl/3+time.Second {
		t.Errorf("joined after %v; want after the old lease's %v, and within a ttl and a third", took, ttl)
	}
}
