package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/server"
)

// Short timings keep the tests fast: a lease of 1 s, beats every 200 ms.
const (
	ttl      = time.Second
	interval = 200 * time.Millisecond
	// patience bounds every wait: not a timing assertion, only a way to
	// fail instead of hanging.
	patience = 20 * time.Second
)

func logger() *slog.Logger {
	if os.Getenv("PULSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testNode is one node of a cluster in the test process: a server on a
// real socket, its cluster membership, and its HTTP API.
type testNode struct {
	name string
	srv  *server.Server
	node *redis.Node
	api  *httpapi.API
	web  *httptest.Server
	hb   string // heartbeat address
	c    *httpapi.Client
}

func startNode(t *testing.T, url, name string) *testNode {
	t.Helper()
	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: interval, Misses: 10}, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	n, err := redis.New(srv, redis.Config{URL: url, Node: name, TTL: ttl, Interval: interval, Addr: ln.Addr().String(), Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Source: n, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(api)
	c, err := httpapi.NewClient(web.URL, web.Client())
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{name: name, srv: srv, node: n, api: api, web: web, hb: ln.Addr().String(), c: c}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api.Close()
		web.Close()
		_ = srv.Shutdown(ctx)
		_ = n.Close(ctx)
	})
	return tn
}

// dial registers a session on a node and closes it when the test ends.
func dial(t *testing.T, addr, name string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := client.Dial(ctx, addr, name, client.WithBackoff(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatalf("dial %s as %s: %v", addr, name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond until it holds, or fails the test after patience.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, patience, state)
		}
		time.Sleep(20 * time.Millisecond) // polling real sockets
	}
}

// listing returns "name@node" of every session a node's API lists, sorted.
func listing(t *testing.T, n *testNode) ([]string, httpapi.Counts) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	all, counts, err := n.c.AllSessions(ctx, httpapi.ListOptions{})
	if err != nil {
		t.Fatalf("list on %s: %v", n.name, err)
	}
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.Name + "@" + s.Node
	}
	sort.Strings(out)
	return out, counts
}

// viewIs waits until every node lists exactly want ("name@node", sorted).
func viewIs(t *testing.T, want []string, nodes ...*testNode) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, "the view on "+n.name, func() (bool, string) {
			got, counts := listing(t, n)
			return slices.Equal(got, want) && counts.Total == len(want), fmt.Sprintf("%v (total %d), want %v", got, counts.Total, want)
		})
	}
}

// watcher records an event stream of a node.
type watcher struct {
	mu     sync.Mutex
	msgs   []httpapi.Message
	cancel context.CancelFunc
	done   chan struct{}
}

func watch(t *testing.T, n *testNode, lastID string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(w.done)
		// Like a browser's EventSource: when the server ends the stream,
		// reconnect with the last ID seen.
		for ctx.Err() == nil {
			err := n.c.Events(ctx, lastID, func(m httpapi.Message) error {
				w.mu.Lock()
				w.msgs = append(w.msgs, m)
				w.mu.Unlock()
				lastID = m.ID
				once.Do(func() { close(ready) })
				return nil
			})
			if err != nil && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond): // the node may be restarting its stream
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	select {
	case <-ready:
	case <-time.After(patience):
		t.Fatalf("no first message from %s's event stream", n.name)
	}
	return w
}

func (w *watcher) all() []httpapi.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// events returns the session events seen, as "kind name reason".
func (w *watcher) events() []httpapi.Message {
	var out []httpapi.Message
	for _, m := range w.all() {
		if m.Type == "event" {
			out = append(out, m)
		}
	}
	return out
}

func describe(ms []httpapi.Message) string {
	var b strings.Builder
	for _, m := range ms {
		if m.Type != "event" {
			fmt.Fprintf(&b, "[%s %s %s] ", m.Type, m.ID, m.Reason)
			continue
		}
		fmt.Fprintf(&b, "[%s %s %s@%s %s] ", m.ID, m.Event.Kind, m.Event.Session.Name, m.Event.Session.Node, m.Event.Reason)
	}
	return b.String()
}

// count counts the events of a kind and reason, and of a name if not empty.
func count(ms []httpapi.Message, kind pulse.EventKind, reason, name string) int {
	n := 0
	for _, m := range ms {
		if m.Type == "event" && m.Event.Kind == kind && m.Event.Reason == reason && (name == "" || m.Event.Session.Name == name) {
			n++
		}
	}
	return n
}

func clusterOf(t *testing.T, n *testNode) httpapi.Cluster {
	t.Helper()
	resp, err := http.Get(n.web.URL + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c httpapi.Cluster
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
