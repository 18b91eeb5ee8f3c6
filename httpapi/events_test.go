package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

func TestEventsStreamAndResume(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	_, c := serveAPI(t, Config{Source: tb})

	w := watch(t, c, "")
	ready := w.waitFor(t, 1)[0]
	if ready.Type != "ready" || ready.ID == "" {
		t.Fatalf("first message %+v, want ready with an id", ready)
	}
	h := tb.join(t, "alpha", map[string]string{"role": "db"})
	tb.join(t, "beta", nil)
	h.Leave(pulse.ReasonBye, "maintenance")
	ms := w.waitFor(t, 4)
	if got := describe(ms[1:]); got != "joined:alpha joined:beta left:alpha " {
		t.Fatalf("events: %s", got)
	}
	joined, left := ms[1].Event, ms[3].Event
	if joined.ID != ms[1].ID || joined.Reason != pulse.ReasonHello || joined.Session.Meta["role"] != "db" || joined.Seq == 0 {
		t.Errorf("joined event %+v", joined)
	}
	if left.Reason != pulse.ReasonBye || left.Detail != "maintenance" || left.Seq != joined.Seq+2 || left.Deadline != nil {
		t.Errorf("left event %+v", left)
	}

	// Resume after the first join: the two events that followed, in order.
	r := watch(t, c, ms[1].ID)
	rs := r.waitFor(t, 3)
	if rs[0].Type != "ready" || rs[0].ID != ms[1].ID || describe(rs[1:]) != "joined:beta left:alpha " || rs[2].ID != ms[3].ID {
		t.Fatalf("resumed: %s %+v", describe(rs), rs[0])
	}
	// A page's last_event_id resumes from the page.
	page, err := c.Sessions(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := watch(t, c, page.LastEventID)
	tb.join(t, "gamma", nil)
	if ps := p.waitFor(t, 2); ps[0].ID != page.LastEventID || describe(ps[1:]) != "joined:gamma " {
		t.Fatalf("from the page: %s", describe(ps))
	}
}

func TestEventsSuspectCarriesLateness(t *testing.T) {
	tb := newTable(t, pulse.Timing{Interval: 20 * time.Millisecond, Misses: 5000, SuspectAfter: 40 * time.Millisecond})
	_, c := serveAPI(t, Config{Source: tb})
	w := watch(t, c, "")
	w.waitFor(t, 1)
	tb.join(t, "quiet", nil)
	ev := w.waitFor(t, 3)[2].Event
	if ev.Kind != pulse.EventSuspect || ev.Deadline == nil || ev.LateMillis == nil || *ev.LateMillis < 0 {
		t.Fatalf("suspect event %+v", ev)
	}
	// late_ms is a float of milliseconds: equal to time - deadline within
	// its rounding, not to the nanosecond.
	late := time.Duration(*ev.LateMillis * float64(time.Millisecond))
	if d := ev.Time.Sub(*ev.Deadline) - late; d < -time.Microsecond || d > time.Microsecond {
		t.Fatalf("suspect event: late_ms %v, but time - deadline = %v", *ev.LateMillis, ev.Time.Sub(*ev.Deadline))
	}
}

func TestEventsResetWhenHistoryCannotResume(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	api, c := serveAPI(t, Config{Source: tb, History: 4})
	w := watch(t, c, "")
	w.waitFor(t, 1)
	for i := range 10 {
		tb.join(t, fmt.Sprintf("n%d", i), nil)
		w.waitFor(t, 2+i) // a reader more than 4 behind would be dropped
	}
	ms := w.waitFor(t, 11)

	old := watch(t, c, ms[1].ID) // 9 events ago, only 4 kept
	got := old.waitFor(t, 1)[0]
	if got.Type != "reset" || !strings.Contains(got.Reason, "older than the 4 kept") || got.ID != ms[10].ID {
		t.Fatalf("resume from too far back: %+v", got)
	}
	if got := watch(t, c, ms[6].ID).waitFor(t, 5); got[0].Type != "ready" || describe(got[1:]) != "joined:n6 joined:n7 joined:n8 joined:n9 " {
		t.Fatalf("resume from the oldest kept: %s", describe(got))
	}

	// An ID from another run of the server (another epoch).
	other := "ffffffff-3"
	if api.hub.epoch == "ffffffff" {
		other = "00000000-3"
	}
	if got := watch(t, c, other).waitFor(t, 1)[0]; got.Type != "reset" || !strings.Contains(got.Reason, "restarted") {
		t.Fatalf("resume from another run: %+v", got)
	}
	tb.join(t, "after-reset", nil)
	if got := old.waitFor(t, 2)[1]; got.Event.Session.Name != "after-reset" {
		t.Fatalf("after the reset the stream goes on: %+v", got)
	}
}

// A reader that stops reading is dropped and never holds up the server or
// another reader.
func TestEventsSlowReaderIsDropped(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	api, err := New(Config{Source: tb, History: 512, WriteTimeout: 200 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// The server's side of each connection, as it closes: the slow
	// reader's close is seen here, not by reading its backlog through a
	// 4 KiB window (at a zero-window probe per 4 KiB, that takes minutes).
	var (
		closedMu sync.Mutex
		closed   = map[string]bool{}
	)
	hs := httptest.NewUnstartedServer(api)
	hs.Config.ConnState = func(nc net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closedMu.Lock()
			closed[nc.RemoteAddr().String()] = true
			closedMu.Unlock()
		}
	}
	hs.Start()
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})
	c, err := NewClient(hs.URL, hs.Client())
	if err != nil {
		t.Fatal(err)
	}

	// The slow reader: a tiny receive window, and it never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.Dial("tcp", strings.TrimPrefix(c.Base(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /v1/events HTTP/1.1\r\nHost: pulse\r\n\r\n")

	healthy := watch(t, c, "")
	healthy.waitFor(t, 1)
	// 16,000 events of about 600 bytes: far more than the socket buffers
	// and the history. Keep the healthy reader within the history, and
	// never more than 40 events (24 KB) behind, so that even a starved
	// test goroutine never lets the server's write to it block for the
	// write timeout: only the slow reader may be dropped.
	const n = 8_000
	for i := range n {
		h := tb.join(t, fmt.Sprintf("churn-%05d", i), map[string]string{"pad": strings.Repeat("x", 250)})
		h.Leave(pulse.ReasonBye, "")
		if i%20 == 19 {
			healthy.waitFor(t, 1+2*(i+1))
		}
	}
	ms := healthy.waitFor(t, 1+2*n)
	for i, m := range ms[1:] {
		if m.Type != "event" || (i > 0 && m.Event.Seq != ms[i].Event.Seq+1) {
			t.Fatalf("healthy reader, message %d: %+v after %+v", i+1, m, ms[i])
		}
	}
	// The slow reader's connection was closed by the server.
	deadline := time.Now().Add(patience)
	for {
		closedMu.Lock()
		done := closed[slow.LocalAddr().String()]
		closedMu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not close the slow reader's stream within %v", patience)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	// Before the cleanup closes anything: it was dropped, and what it was
	// sent before that starts as a stream should.
	_ = slow.SetReadDeadline(time.Now().Add(patience))
	status, _ := bufio.NewReader(slow).ReadString('\n')
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("slow reader's answer: %q", status)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	api, c := serveAPI(t, Config{Source: tb})
	w := watch(t, c, "")
	w.waitFor(t, 1)
	tb.join(t, "last", nil)
	w.waitFor(t, 2)
	api.Close()
	select {
	case err := <-w.done:
		w.done <- err
		if err != nil {
			t.Fatalf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(patience):
		t.Fatal("Close did not end the stream")
	}
	// A new stream is refused while closed.
	err := c.Events(context.Background(), "", func(Message) error { return nil })
	var apiErr *Error
	if err == nil || !asError(err, &apiErr) || apiErr.Code != CodeUnavailable {
		t.Fatalf("stream after Close: %v", err)
	}
}

func TestReadSSE(t *testing.T) {
	in := ": comment\n\nretry: 10\nid: 1\nevent: ready\ndata: {}\n\nid: 2\ndata: line1\ndata: line2\n\nid\ndata:x\n\nevent: orphan\n\n"
	var got []string
	err := readSSE(strings.NewReader(in), func(typ, id string, data []byte) error {
		got = append(got, typ+"|"+id+"|"+string(data))
		return nil
	})
	want := []string{"ready|1|{}", "message|2|line1\nline2", "message||x"}
	if err != nil || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

// TestStallEventJSON: a stall of the server is an event about no session:
// its JSON has no session and says how long the stall was and how
// judgments are held, and session events keep their session.
func TestStallEventJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	stall := pulse.Event{Seq: 7, Kind: pulse.EventStall, Time: at, Reason: pulse.ReasonLateWakeup, Detail: "the server did not run",
		Stall: &pulse.Stall{Length: 20*time.Second + 312*time.Millisecond, Overdue: 1000, Grace: 2 * time.Second}}
	b, err := json.Marshal(newEvent("e-7", stall))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"e-7","seq":7,"kind":"stall","time":"2026-11-25T12:00:00Z","reason":"late_wakeup","detail":"the server did not run","stall":{"length_ms":20312,"overdue":1000,"grace_ms":2000}}`
	if string(b) != want {
		t.Fatalf("stall event JSON:\n%s\nwant\n%s", b, want)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Kind != pulse.EventStall || back.Session.Name != "" || back.Stall == nil || back.Stall.Overdue != 1000 {
		t.Fatalf("decoded %+v, %v", back, err)
	}

	joined := pulse.Event{Seq: 8, Kind: pulse.EventJoined, Time: at, Reason: pulse.ReasonHello,
		Session: pulse.Session{ID: "0000000100000001", Name: "web-1", State: pulse.StateAlive, ConnectedAt: at, LastBeat: at}}
	b, err = json.Marshal(newEvent("e-8", joined))
	if err != nil || !strings.Contains(string(b), `"session":{"name":"web-1"`) || strings.Contains(string(b), "stall") {
		t.Fatalf("joined event JSON %s, %v", b, err)
	}
}
