package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

func TestListPagesThroughEverySession(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	var want []string
	for i := range 230 {
		name := fmt.Sprintf("dev-%03d", i)
		want = append(want, name)
		tb.join(t, name, map[string]string{"rack": fmt.Sprint(i % 3)})
	}
	tb.join(t, "zz-other", nil)
	_, c := serveAPI(t, Config{Source: tb})
	ctx := context.Background()

	first, err := c.Sessions(ctx, ListOptions{Limit: 100, Prefix: "dev-"})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Sessions) != 100 || first.NextCursor == "" || first.Counts != (Counts{Alive: 231, Total: 231}) {
		t.Fatalf("first page: %d sessions, cursor %q, counts %+v", len(first.Sessions), first.NextCursor, first.Counts)
	}
	s := first.Sessions[0]
	if s.Name != "dev-000" || s.State != pulse.StateAlive || s.Peer != "127.0.0.1:9" || s.Meta["rack"] != "0" ||
		s.Beats != 0 || s.IntervalMillis != 3000 || s.ID == "" || time.Since(s.LastBeat) > time.Minute || s.ConnectedAt.IsZero() {
		t.Errorf("first session %+v", s)
	}
	if first.LastEventID == "" || time.Since(first.ServerTime) > time.Minute {
		t.Errorf("page without last_event_id or server_time: %+v", first)
	}

	all, _, err := c.AllSessions(ctx, ListOptions{Limit: 7, Prefix: "dev-"})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(all))
	for i, s := range all {
		got[i] = s.Name
	}
	if !slices.Equal(got, want) {
		t.Fatalf("all pages of dev-: %d names, want the 230 in order", len(got))
	}
}

func TestListByState(t *testing.T) {
	// Real time: suspect after 40 ms of silence, dead only after 100 s.
	tb := newTable(t, pulse.Timing{Interval: 20 * time.Millisecond, Misses: 5000, SuspectAfter: 40 * time.Millisecond})
	sub := tb.Subscribe(0)
	defer sub.Close()
	a := tb.join(t, "a", nil)
	tb.join(t, "b", nil)
	seen := map[string]bool{}
	for len(seen) < 2 { // wait for both to go suspect
		select {
		case ev := <-sub.C():
			if ev.Kind == pulse.EventSuspect {
				seen[ev.Session.Name] = true
			}
		case <-time.After(patience):
			t.Fatal("no suspect events")
		}
	}
	a.Beat(0) // a recovers; b stays suspect
	_, c := serveAPI(t, Config{Source: tb})
	ctx := context.Background()
	list, err := c.Sessions(ctx, ListOptions{State: pulse.StateSuspect})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 1 || list.Sessions[0].Name != "b" || list.Sessions[0].State != pulse.StateSuspect {
		t.Fatalf("?state=suspect: %+v", list.Sessions)
	}
	if list.Counts != (Counts{Alive: 1, Suspect: 1, Total: 2}) {
		t.Errorf("counts %+v", list.Counts)
	}
	if list, err := c.Sessions(ctx, ListOptions{State: pulse.StateAlive}); err != nil || len(list.Sessions) != 1 || list.Sessions[0].Name != "a" {
		t.Fatalf("?state=alive: %+v %v", list.Sessions, err)
	}
}

// ?names= gets the rows a dashboard shows, whatever their order, in one
// request.
func TestListByNames(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	for _, n := range []string{"a", "b", "c"} {
		tb.join(t, n, nil)
	}
	_, c := serveAPI(t, Config{Source: tb})
	list, err := c.Sessions(context.Background(), ListOptions{Names: []string{"c", "gone", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 2 || list.Sessions[0].Name != "a" || list.Sessions[1].Name != "c" || list.NextCursor != "" || list.Counts.Total != 3 {
		t.Fatalf("names c gone a: %+v", list)
	}
	if list.ServerTime.Location() != time.UTC {
		t.Errorf("server_time not in UTC: %v", list.ServerTime)
	}
}

func TestGetSession(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	h := tb.join(t, "edge:eu-1", map[string]string{"zone": "b"})
	h.Beat(1500 * time.Microsecond)
	_, c := serveAPI(t, Config{Source: tb})
	s, err := c.Session(context.Background(), "edge:eu-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "edge:eu-1" || s.Beats != 1 || s.RTT() != 1500*time.Microsecond || s.RTTMillis != 1.5 || s.Meta["zone"] != "b" {
		t.Fatalf("session %+v", s)
	}
	_, err = c.Session(context.Background(), "nobody")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != CodeNotFound || !strings.Contains(apiErr.Message, `"nobody"`) {
		t.Fatalf("unknown name: %v", err)
	}
}

// Kicking through the API tells the client "ERR kicked", closes its
// connection and declares a kicked event, on a real server.
func TestKickThroughTheAPI(t *testing.T) {
	srv, addr := startServer(t, pulse.DefaultTiming())
	sub := srv.Subscribe(0)
	defer sub.Close()
	cl := dialRaw(t, addr, "HELLO worker-7")
	_, c := serveAPI(t, Config{Source: srv})

	s, err := c.Kick(context.Background(), "worker-7", "moving you to\nanother pool")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "worker-7" || s.State != pulse.StateAlive {
		t.Errorf("kick returned %+v", s)
	}
	if l := cl.hear(t); l != "ERR kicked moving you to another pool" {
		t.Fatalf("the client heard %q", l)
	}
	if _, err := cl.r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after the kick")
	}
	for ev := range sub.C() {
		if ev.Kind == pulse.EventKicked {
			if ev.Session.Name != "worker-7" || ev.Reason != pulse.ReasonKicked {
				t.Fatalf("kicked event %+v", ev)
			}
			break
		}
	}
	if _, ok := srv.Session("worker-7"); ok {
		t.Fatal("kicked session still listed")
	}
	var apiErr *Error
	if _, err := c.Kick(context.Background(), "worker-7", ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("kicking it again: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	tb.join(t, "a", nil)
	_, c := serveAPI(t, Config{Source: tb})
	base := c.Base()
	cases := []struct {
		method, path string
		status       int
		code         string
		says         string
	}{
		{"GET", "/v1/sessions?state=dead", 400, CodeBadFilter, "alive and suspect"},
		{"GET", "/v1/sessions?state=sleepy", 400, CodeBadFilter, "?state=sleepy"},
		{"GET", "/v1/sessions?name=web%20", 400, CodeBadFilter, "cannot start any name"},
		{"GET", "/v1/sessions?limit=0", 400, CodeBadRequest, "from 1 to 1000"},
		{"GET", "/v1/sessions?limit=1001", 400, CodeBadRequest, "from 1 to 1000"},
		{"GET", "/v1/sessions?limit=ten", 400, CodeBadRequest, "?limit=ten"},
		{"GET", "/v1/sessions?cursor=%25%25%25", 400, CodeBadCursor, "next_cursor"},
		{"GET", "/v1/sessions?cursor=" + "YWJj", 400, CodeBadCursor, "not a cursor"}, // base64 of "abc"
		{"GET", "/v1/sessions?status=suspect", 400, CodeBadRequest, "unknown parameter ?status"},
		{"GET", "/v1/sessions?state=alive&state=suspect", 400, CodeBadRequest, "once"},
		{"GET", "/v1/sessions?names=a,b%20c", 400, CodeBadRequest, `"b c" is not a name`},
		{"GET", "/v1/sessions?names=a&limit=5", 400, CodeBadRequest, "no cursor or limit"},
		{"GET", "/v1/sessions?names=" + strings.Repeat("a,", 1000) + "a", 400, CodeBadRequest, "at most 1000"},
		{"GET", "/v1/sessions/nobody", 404, CodeNotFound, `"nobody"`},
		{"DELETE", "/v1/sessions/nobody", 404, CodeNotFound, `"nobody"`},
		{"POST", "/v1/sessions", 405, CodeMethodNotAllowed, "use GET"},
		{"PUT", "/v1/sessions/a", 405, CodeMethodNotAllowed, "GET, DELETE"},
		{"GET", "/v1/nothing", 404, CodeNotFound, "docs/api.md"},
		{"GET", "/v1/events?since=3", 400, CodeBadRequest, "last_event_id"},
		{"GET", "/v1/events?last_event_id=42", 400, CodeBadEventID, "not an event ID"},
		{"POST", "/v1/events", 405, CodeMethodNotAllowed, "use GET"},
		{"GET", "/metrics", 404, CodeNotFound, "metrics are not enabled"},
		{"GET", "/", 404, CodeNotFound, "dashboard is not enabled"},
	}
	for _, tc := range cases {
		var body struct{ Error *Error }
		resp := getJSON(t, tc.method, base+tc.path, &body)
		if resp.StatusCode != tc.status || body.Error == nil || body.Error.Code != tc.code || !strings.Contains(body.Error.Message, tc.says) {
			t.Errorf("%s %s: %d %+v; want %d %s saying %q", tc.method, tc.path, resp.StatusCode, body.Error, tc.status, tc.code, tc.says)
		}
		if tc.status == 405 && resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
	// The listing still works after all that.
	if list, err := c.Sessions(context.Background(), ListOptions{}); err != nil || len(list.Sessions) != 1 {
		t.Fatalf("after bad requests: %v %v", list, err)
	}
}

func TestHealthz(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	tb.join(t, "a", nil)
	api, c := serveAPI(t, Config{Source: tb})
	var h Health
	if resp := getJSON(t, "GET", c.Base()+"/healthz", &h); resp.StatusCode != 200 || h.Status != "ok" || h.Sessions != 1 || h.Version != pulse.Version {
		t.Fatalf("healthz %d %+v", resp.StatusCode, h)
	}
	api.Close()
	var body struct{ Error *Error }
	if resp := getJSON(t, "GET", c.Base()+"/healthz", &body); resp.StatusCode != 503 || body.Error.Code != CodeUnavailable {
		t.Fatalf("healthz after Close: %d %+v", resp.StatusCode, body.Error)
	}
}

func TestClientSaysWhenNothingAnswers(t *testing.T) {
	ln := listenAndClose(t)
	c, err := NewClient(ln, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sessions(context.Background(), ListOptions{})
	if !isUnreachable(err) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), ln) {
		t.Fatalf("nothing listening: %v", err)
	}
	for _, bad := range []string{"", "ftp://x:1", "http://"} {
		if _, err := NewClient(bad, nil); err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
		}
	}
	// Something that is not pulse answers.
	notPulse := http.NewServeMux()
	notPulse.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", 404) })
	_, other := serveOther(t, notPulse)
	if _, err := other.Session(context.Background(), "a"); !isUnreachable(err) || !strings.Contains(err.Error(), "not pulse") {
		t.Fatalf("not pulse: %v", err)
	}
}

var _ Source = table{}
