package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

// A single server is a cluster of one node with no store.
func TestClusterOfASingleServer(t *testing.T) {
	tb := newTable(t, pulse.Timing{Interval: time.Second, Misses: 3})
	tb.join(t, "one", nil)
	_, c := serveAPI(t, Config{Source: tb})
	resp, err := http.Get(c.Base() + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cl Cluster
	if err := json.NewDecoder(resp.Body).Decode(&cl); err != nil {
		t.Fatal(err)
	}
	if cl.Store != "none" || len(cl.Nodes) != 1 || cl.Nodes[0].Sessions != 1 || cl.Nodes[0].Name != cl.Node {
		t.Fatalf("GET /v1/cluster = %+v, want store none and this one node with its one session", cl)
	}
	// and its sessions name no node
	resp2, err := http.Get(c.Base() + "/v1/sessions/one")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp2.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["node"]; ok {
		t.Fatalf("a single server's session has a node: %v", raw)
	}
}

// numbered is a Source that numbers its events itself, sparsely, as a
// cluster does.
type numbered struct {
	table
	mu    sync.Mutex
	epoch string
	subs  []*numberedSub
}

type numberedSub struct {
	ch   chan pulse.Event
	from uint64
	err  error
}

func (s *numberedSub) C() <-chan pulse.Event { return s.ch }
func (s *numberedSub) From() uint64          { return s.from }
func (s *numberedSub) Err() error            { return s.err }
func (s *numberedSub) Close()                {}

func (n *numbered) SubscribeEvents(buffer int) (Subscription, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := &numberedSub{ch: make(chan pulse.Event, buffer), from: 1}
	n.subs = append(n.subs, s)
	return s, n.epoch
}

func (n *numbered) send(seq uint64, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		if s.err == nil {
			s.ch <- pulse.Event{Seq: seq, Kind: pulse.EventJoined, Time: time.Now(), Reason: pulse.ReasonHello,
				Session: pulse.Session{ID: "1", Name: name, State: pulse.StateAlive}}
		}
	}
}

// reset ends every subscription with ErrReset under a new epoch.
func (n *numbered) reset(epoch string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch = epoch
	for _, s := range n.subs {
		if s.err == nil {
			s.err = ErrReset
			close(s.ch)
		}
	}
}

// A source's own numbers and epoch make the event IDs: sparse numbers
// resume exactly, and a reset of the source resets every stream.
func TestEventSourceNumbersTheEvents(t *testing.T) {
	src := &numbered{table: newTable(t, pulse.Timing{Interval: time.Second, Misses: 3}), epoch: "e1"}
	_, c := serveAPI(t, Config{Source: src})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	collect := func(lastID string, n int) []Message {
		var got []Message
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		_ = c.Events(cctx, lastID, func(m Message) error {
			got = append(got, m)
			if len(got) == n {
				ccancel()
			}
			return nil
		})
		return got
	}
	waitStreams := func(want int) {
		deadline := time.Now().Add(patience)
		for src.streamsReady() < want {
			if time.Now().After(deadline) {
				t.Fatal("the hub did not subscribe")
			}
			time.Sleep(time.Millisecond) // the hub subscribes on its own goroutine
		}
	}
	waitStreams(1)
	src.send(1000, "a")
	src.send(5000, "b")
	src.send(5001, "c")
	got := collect("e1-0", 4) // from the start of the source's numbers
	if got[0].Type != "ready" || got[1].ID != "e1-1000" || got[2].ID != "e1-5000" || got[3].ID != "e1-5001" {
		t.Fatalf("stream: %+v", got)
	}
	// resume after 1000: b and c
	res := collect("e1-1000", 3)
	if res[0].Type != "ready" || res[1].Event.Session.Name != "b" || res[2].Event.Session.Name != "c" {
		t.Fatalf("resumed after e1-1000: %+v", res)
	}
	// a reset of the source: a resume from the old epoch gets a reset
	src.reset("e2")
	waitStreams(2)
	res = collect("e1-5001", 1)
	if res[0].Type != "reset" || !strings.HasPrefix(res[0].ID, "e2-") {
		t.Fatalf("resuming from before the source's reset: %+v, want a reset in epoch e2", res)
	}
}

func (n *numbered) streamsReady() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subs)
}

// A stream open when its source resets is ended as restarted, not as a
// reader that fell behind: the reader did nothing wrong, and reconnects.
func TestSourceResetEndsOpenStreamsAsRestarted(t *testing.T) {
	src := &numbered{table: newTable(t, pulse.Timing{Interval: time.Second, Misses: 3}), epoch: "e1"}
	_, c := serveAPI(t, Config{Source: src})
	for deadline := time.Now().Add(patience); src.streamsReady() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not subscribe")
		}
		time.Sleep(time.Millisecond) // the hub subscribes on its own goroutine
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Base()+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for { // past the ready frame
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("before ready: %v", err)
		}
		if line == "\n" {
			break
		}
	}
	src.reset("e2")
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading to the end of the stream: %v", err)
	}
	if !strings.Contains(string(rest), ": restarted:") || strings.Contains(string(rest), "behind") {
		t.Fatalf("the stream ended with %q; want a restarted comment, not a fell-behind one", rest)
	}
}

// clustered is a Source that says it is a node of a cluster whose store
// is in the state it is given.
type clustered struct {
	table
	store string
}

func (c clustered) Cluster(context.Context) Cluster {
	return Cluster{Store: c.store, Node: "n1", Nodes: []ClusterNode{{Name: "n1", Sessions: 1}, {Name: "n2", Sessions: 4}}}
}

// Client.Cluster returns what GET /v1/cluster answers, on a single server
// and on a node of a cluster, and an error wrapping ErrUnreachable when
// nothing answers.
func TestClientCluster(t *testing.T) {
	ctx := context.Background()
	tb := newTable(t, pulse.Timing{Interval: time.Second, Misses: 3})
	tb.join(t, "one", nil)

	_, single := serveAPI(t, Config{Source: tb})
	cl, err := single.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Store != "none" || len(cl.Nodes) != 1 || cl.Nodes[0].Sessions != 1 {
		t.Errorf("Cluster of a single server = %+v, want store none and one node with one session", cl)
	}

	_, node := serveAPI(t, Config{Source: clustered{tb, "unreachable"}})
	cl, err = node.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Store != "unreachable" || cl.Node != "n1" || len(cl.Nodes) != 2 || cl.Nodes[1].Name != "n2" || cl.Nodes[1].Sessions != 4 {
		t.Errorf("Cluster of a node cut off from its store = %+v", cl)
	}

	gone, err := NewClient(listenAndClose(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Cluster(ctx); !isUnreachable(err) {
		t.Errorf("Cluster of nothing: %v, want ErrUnreachable", err)
	}
}
