package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/internal/redistest"
)

// streamCount counts the entries of the store's event stream of a kind and
// reason: what every node streams, each entry once.
func streamCount(t *testing.T, rs *redistest.Server, kind, reason string) int {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ms, err := rdb.XRange(context.Background(), "pulse:events", "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE pulse:events: %v", err)
	}
	n := 0
	for _, m := range ms {
		if m.Values["k"] == kind && m.Values["r"] == reason {
			n++
		}
	}
	return n
}

// A node killed with SIGKILL: after its lease lapses, the survivors declare
// each of its sessions dead with reason node_lost, exactly once between
// them, and remove them from the view.
func TestKilledNodeSessionsAreLostOnce(t *testing.T) {
	rs := redistest.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "pulse")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/pulsehq/pulse/cmd/pulse").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logFile, err := os.Create(filepath.Join(dir, "victim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	victim := exec.Command(bin, "serve", "--listen", addr, "--http", "", "--redis", rs.URL(), "--node", "victim",
		"--node-ttl", ttl.String(), "--interval", interval.String(), "--misses", "10")
	victim.Stdout, victim.Stderr = logFile, logFile
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = victim.Process.Kill()
			_ = victim.Wait()
		}
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("victim's log:\n%s", log)
		}
	})
	eventually(t, "the victim in the cluster", func() (bool, string) {
		cl := clusterOf(t, a)
		return len(cl.Nodes) == 3, fmt.Sprintf("%+v", cl)
	})
	wa, wb := watch(t, a, ""), watch(t, b, "")
	want := []string{"a-0@a"}
	dial(t, a.hb, "a-0")
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		c, err := client.Dial(ctx, addr, "v-"+strconv.Itoa(i), client.WithBackoff(time.Second, time.Minute))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		want = append(want, fmt.Sprintf("v-%d@victim", i))
	}
	viewIs(t, want, a, b)

	if err := victim.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = victim.Wait()
	killed = true
	start := time.Now()
	lost := func(w *watcher) func() (bool, string) {
		return func() (bool, string) {
			ev := w.events()
			return count(ev, pulse.EventDead, pulse.ReasonNodeLost, "") >= 3, describe(ev)
		}
	}
	eventually(t, "node_lost deaths on a", lost(wa))
	eventually(t, "node_lost deaths on b", lost(wb))
	if took := time.Since(start); took > ttl+3*time.Second {
		t.Errorf("the victim's sessions were declared lost %v after it died; want within the node ttl (%v) and a margin", took, ttl)
	}
	viewIs(t, []string{"a-0@a"}, a, b)

	// Let both survivors renew and reap a few more times, then check that
	// no session was declared lost twice.
	eventually(t, "survivors renewing after the death", func() (bool, string) {
		cl := clusterOf(t, a)
		ok := len(cl.Nodes) == 2
		for _, n := range cl.Nodes {
			ok = ok && n.LastSeen.After(start.Add(2*ttl))
		}
		return ok, fmt.Sprintf("%+v", cl)
	})
	dial(t, b.hb, "marker")
	for _, w := range []*watcher{wa, wb} {
		eventually(t, "the marker", func() (bool, string) {
			ev := w.events()
			return count(ev, pulse.EventJoined, pulse.ReasonHello, "marker") == 1, describe(ev)
		})
		ev := w.events()
		for i := range 3 {
			if n := count(ev, pulse.EventDead, pulse.ReasonNodeLost, "v-"+strconv.Itoa(i)); n != 1 {
				t.Errorf("%d node_lost deaths of v-%d, want 1: %s", n, i, describe(ev))
			}
		}
		for _, m := range ev {
			if m.Event.Kind == pulse.EventDead && (m.Event.Session.Node != "victim" || m.Event.Session.State != pulse.StateDead) {
				t.Errorf("a node_lost death %+v: want the victim's session, dead", m.Event)
			}
		}
	}
	if n := streamCount(t, rs, "dead", pulse.ReasonNodeLost); n != 3 {
		t.Errorf("the store's stream holds %d node_lost deaths, want 3", n)
	}
}

// Redis stopped, then started again empty: every node serves its own
// clients meanwhile and says the store is unreachable; then each
// republishes, and the view converges with every session once, no live
// node taken for lost, and a stream resuming across gets a reset.
func TestRedisRestartedEmpty(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")
	dial(t, a.hb, "a1")
	dial(t, a.hb, "a2")
	dial(t, b.hb, "b1")
	b2 := dial(t, b.hb, "b2")
	viewIs(t, []string{"a1@a", "a2@a", "b1@b", "b2@b"}, a, b)
	wa := watch(t, a, "")
	before := wa.all()[0].ID

	rs.Stop()
	for _, n := range []*testNode{a, b} {
		eventually(t, n.name+" says the store is unreachable", func() (bool, string) {
			cl := clusterOf(t, n)
			return cl.Store == "unreachable", cl.Store
		})
	}
	// Meanwhile each node goes on for its own clients.
	dial(t, a.hb, "during")
	b2.Close()
	eventually(t, "a's own join reaches a's event stream", func() (bool, string) {
		ev := wa.events()
		return count(ev, pulse.EventJoined, pulse.ReasonHello, "during") == 1, describe(ev)
	})
	// Each knows only its own changes: b2 left b, unknown to a.
	viewIs(t, []string{"a1@a", "a2@a", "b1@b", "b2@b", "during@a"}, a)
	viewIs(t, []string{"a1@a", "a2@a", "b1@b"}, b)

	rs.Restart() // empty: no persistence
	want := []string{"a1@a", "a2@a", "b1@b", "during@a"}
	viewIs(t, want, a, b)
	for _, n := range []*testNode{a, b} {
		eventually(t, n.name+" back in the cluster", func() (bool, string) {
			cl := clusterOf(t, n)
			return cl.Store == "ok" && len(cl.Nodes) == 2, fmt.Sprintf("%+v", cl)
		})
	}
	// Past a node ttl after both came back: a reaper would have run.
	eventually(t, "both nodes renewing a ttl after the restart", func() (bool, string) {
		cl := clusterOf(t, a)
		ok := len(cl.Nodes) == 2
		for _, n := range cl.Nodes {
			ok = ok && n.LastSeen.Sub(n.Since) > 2*ttl
		}
		return ok, fmt.Sprintf("%+v", cl)
	})
	viewIs(t, want, a, b)
	if n := count(wa.events(), pulse.EventDead, pulse.ReasonNodeLost, ""); n != 0 {
		t.Errorf("%d node_lost deaths of live nodes' sessions: %s", n, describe(wa.all()))
	}
	if n := streamCount(t, rs, "dead", pulse.ReasonNodeLost); n != 0 {
		t.Errorf("the store's stream holds %d node_lost deaths; no node died", n)
	}
	resets := 0
	for _, m := range wa.all() {
		if m.Type == "reset" {
			resets++
		}
	}
	if resets == 0 {
		t.Errorf("the stream that lived through the restart got no reset: %s", describe(wa.all()))
	}
	// A client resuming from before the restart, on either node, reloads.
	for _, n := range []*testNode{a, b} {
		w := watch(t, n, before)
		if first := w.all()[0]; first.Type != "reset" {
			t.Errorf("resuming on %s from %s before the restart began with %s, want reset", n.name, before, first.Type)
		}
	}
}

// Redis stopped with its data saved, and started again from it after the
// nodes' leases lapsed: the store still lists every node, with a lease
// gone, and the same epoch. No live node may be taken for lost: every node
// registers again before any reaper judges, the view keeps every session
// once, and no node_lost is declared. (Here both nodes come back within a
// renewal of each other; the reaper's guard for a node that comes back up
// to a ttl later than another is in reapScript, judged on Redis's clock.)
func TestRedisRestartedWithData(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")
	dial(t, a.hb, "a1")
	dial(t, b.hb, "b1")
	want := []string{"a1@a", "b1@b"}
	viewIs(t, want, a, b)
	wa := watch(t, a, "")

	if _, err := rs.Do("SAVE"); err != nil { // the RDB that Restart loads
		t.Fatal(err)
	}
	rs.Stop()
	for _, n := range []*testNode{a, b} {
		eventually(t, n.name+" says the store is unreachable", func() (bool, string) {
			cl := clusterOf(t, n)
			return cl.Store == "unreachable", cl.Store
		})
	}
	// The outage outlasts every lease the RDB holds: Redis drops them as it
	// loads, and keeps the nodes' entries.
	time.Sleep(2 * ttl)
	rs.Restart()
	if v, err := rs.Do("HLEN", "pulse:nodes"); err != nil || v != "2" {
		t.Fatalf("the restarted Redis lists %q nodes (%v); want the 2 it saved", v, err)
	}
	eventually(t, "both nodes renewing two ttls after the restart", func() (bool, string) {
		cl := clusterOf(t, a)
		ok := cl.Store == "ok" && len(cl.Nodes) == 2
		for _, n := range cl.Nodes {
			ok = ok && n.LastSeen.Sub(n.Since) > 2*ttl
		}
		return ok, fmt.Sprintf("%+v", cl)
	})
	viewIs(t, want, a, b)
	if n := streamCount(t, rs, "dead", pulse.ReasonNodeLost); n != 0 {
		t.Errorf("the store's stream holds %d node_lost deaths; no node died", n)
	}
	if n := count(wa.events(), pulse.EventDead, pulse.ReasonNodeLost, ""); n != 0 {
		t.Errorf("%d node_lost deaths of live nodes' sessions: %s", n, describe(wa.all()))
	}
}

// While the store is unreachable, a node answers with the beat counts of
// other nodes' sessions it last read, not those of each session's join: a
// session that beats on does not look as if it had stopped.
func TestOutageKeepsTheBeatsLastRead(t *testing.T) {
	rs := redistest.Start(t)
	a, b := startNode(t, rs.URL(), "a"), startNode(t, rs.URL(), "b")
	dial(t, b.hb, "b1")
	viewIs(t, []string{"b1@b"}, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var seen uint64
	eventually(t, "a reads b1's beats", func() (bool, string) {
		s, err := a.c.Session(ctx, "b1")
		if err != nil {
			return false, err.Error()
		}
		seen = s.Beats
		return seen >= 3, fmt.Sprintf("%d beats", seen)
	})
	rs.Stop()
	eventually(t, "a says the store is unreachable", func() (bool, string) {
		cl := clusterOf(t, a)
		return cl.Store == "unreachable", cl.Store
	})
	s, err := a.c.Session(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Beats < seen {
		t.Errorf("b1 on a while the store is unreachable: %d beats, after %d were read", s.Beats, seen)
	}
}
