package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
	"github.com/pulsehq/pulse/registry"
	"github.com/pulsehq/pulse/server"
)

// patience bounds every wait: not a timing assertion, only a way to fail
// instead of hanging if something that must happen does not.
const patience = 15 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// table is a registry as a Source, for tests that need many sessions
// without their sockets.
type table struct{ *registry.Registry }

func (t table) Session(name string) (pulse.Session, bool) { return t.Lookup(name) }

func newTable(t *testing.T, timing pulse.Timing) table {
	t.Helper()
	r, err := registry.New(registry.Config{Policy: detect.NewFixed(timing), Interval: timing.Interval, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return table{r}
}

// nopLink is the link of a session with no connection.
type nopLink struct{}

func (nopLink) End(pulse.EventKind, string) {}

func (tb table) join(t *testing.T, name string, meta map[string]string) *registry.Handle {
	t.Helper()
	h, err := tb.Join(registry.Join{Name: name, Peer: "127.0.0.1:9", Meta: meta, Link: nopLink{}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveAPI serves an API over src on a real loopback socket and returns a
// client of it.
func serveAPI(t *testing.T, cfg Config) (*API, *Client) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})
	c, err := NewClient(hs.URL, hs.Client())
	if err != nil {
		t.Fatal(err)
	}
	return api, c
}

// startServer runs a pulse server on a loopback port.
func startServer(t *testing.T, timing pulse.Timing) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(server.Config{Timing: timing, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return srv, ln.Addr().String()
}

// rawClient is a heartbeat client speaking the wire protocol by hand.
type rawClient struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr, hello string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &rawClient{nc, bufio.NewReader(nc)}
	c.say(t, hello)
	if l := c.hear(t); !strings.HasPrefix(l, "WELCOME ") {
		t.Fatalf("HELLO answered %q", l)
	}
	return c
}

func (c *rawClient) say(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *rawClient) hear(t *testing.T) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(patience))
	l, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from the server: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// getJSON does a request and decodes the JSON answer, whatever its status.
func getJSON(t *testing.T, method, url string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// watcher reads an event stream in the background.
type watcher struct {
	mu   sync.Mutex
	msgs []Message
	more chan struct{}
	done chan error
}

func watch(t *testing.T, c *Client, lastID string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{more: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		w.done <- c.Events(ctx, lastID, func(m Message) error {
			w.mu.Lock()
			w.msgs = append(w.msgs, m)
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// waitFor waits until the stream holds n messages and returns them.
func (w *watcher) waitFor(t *testing.T, n int) []Message {
	t.Helper()
	deadline := time.After(patience)
	for {
		w.mu.Lock()
		have := len(w.msgs)
		if have >= n {
			got := append([]Message(nil), w.msgs...)
			w.mu.Unlock()
			return got
		}
		w.mu.Unlock()
		select {
		case <-w.more:
		case err := <-w.done:
			w.done <- err
			t.Fatalf("the stream ended (%v) after %d messages, want %d: %s", err, have, n, w.describe())
		case <-deadline:
			t.Fatalf("%d messages after %v, want %d: %s", have, patience, n, w.describe())
		}
	}
}

func (w *watcher) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return describe(w.msgs[:min(len(w.msgs), 50)])
}

func describe(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		if m.Type == "event" {
			fmt.Fprintf(&b, "%s:%s ", m.Event.Kind, m.Event.Session.Name)
		} else {
			fmt.Fprintf(&b, "[%s %s] ", m.Type, m.Reason)
		}
	}
	return b.String()
}

func isUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// listenAndClose returns a loopback address where nothing listens.
func listenAndClose(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func serveOther(t *testing.T, h http.Handler) (*httptest.Server, *Client) {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	c, err := NewClient(hs.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return hs, c
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
