package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse"
)

const testToken = "0123456789abcdef0123456789abcdef"

// serveWithToken serves an API that wants testToken, with /metrics and a
// dashboard, and returns its base URL.
func serveWithToken(t *testing.T) (string, table) {
	t.Helper()
	tb := newTable(t, pulse.DefaultTiming())
	tb.join(t, "alpha", nil)
	ok := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) })
	}
	api, err := New(Config{Source: tb, Logger: quiet, Token: testToken, Metrics: ok("pulse_beats_total 0\n"), Dashboard: ok("<html>")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})
	return hs.URL, tb
}

// TestTokenRequired: every endpoint that holds data (the JSON API, the
// event stream, /metrics) answers 401 with the JSON error and a Bearer
// challenge without the token or with another, and serves with it;
// /healthz and the dashboard's files are open.
func TestTokenRequired(t *testing.T) {
	base, _ := serveWithToken(t)
	guarded := []struct{ method, path string }{
		{"GET", "/v1/sessions"},
		{"GET", "/v1/sessions/alpha"},
		{"DELETE", "/v1/sessions/nobody"},
		{"GET", "/v1/events"},
		{"GET", "/v1/nowhere"},
		{"GET", "/metrics"},
		{"GET", "//v1/sessions"}, // a path the mux would clean and redirect
	}
	for _, g := range guarded {
		for _, auth := range []string{"", "Bearer wrong-token-wrong-token", "Basic " + testToken, "Bearer", testToken} {
			req, _ := http.NewRequest(g.method, base+g.path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body struct{ Error *Error }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || body.Error == nil || body.Error.Code != CodeUnauthorized ||
				!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s %s with %q: HTTP %d, %+v, WWW-Authenticate %q; want 401 unauthorized with a Bearer challenge",
					g.method, g.path, auth, resp.StatusCode, body.Error, resp.Header.Get("WWW-Authenticate"))
			}
			if wrong := strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token"); wrong != strings.HasPrefix(auth, "Bearer wrong") {
				t.Errorf("%s %s with %q: challenge %q", g.method, g.path, auth, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/sessions", 200},
		{"GET", "/v1/sessions/alpha", 200},
		{"DELETE", "/v1/sessions/nobody", 404},
		{"GET", "/metrics", 200},
		{"GET", "/healthz", 200},
	} {
		for _, scheme := range []string{"Bearer ", "bearer "} {
			req, _ := http.NewRequest(tt.method, base+tt.path, nil)
			req.Header.Set("Authorization", scheme+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("%s %s with the token: HTTP %d, want %d", tt.method, tt.path, resp.StatusCode, tt.status)
			}
		}
	}
	for _, path := range []string{"/healthz", "/", "/app.js"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a token: HTTP %d, want 200 (it holds no data)", path, resp.StatusCode)
		}
	}
}

// TestClientToken: the Go client sends its token on the JSON calls and
// the event stream; without it, it gets the API's unauthorized error.
func TestClientToken(t *testing.T) {
	base, tb := serveWithToken(t)
	c, err := NewClient(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sessions(context.Background(), ListOptions{})
	var ae *Error
	if !asError(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code != CodeUnauthorized {
		t.Fatalf("without the token: %v, want the 401 unauthorized error", err)
	}
	if err := c.Events(context.Background(), "", func(Message) error { return nil }); !asError(err, &ae) || ae.Code != CodeUnauthorized {
		t.Fatalf("event stream without the token: %v", err)
	}
	c.SetToken(testToken)
	page, err := c.Sessions(context.Background(), ListOptions{})
	if err != nil || len(page.Sessions) != 1 || page.Sessions[0].Name != "alpha" {
		t.Fatalf("with the token: %+v, %v", page, err)
	}
	w := watch(t, c, page.LastEventID)
	tb.join(t, "beta", nil)
	if ms := w.waitFor(t, 2); ms[0].Type != "ready" || describe(ms[1:]) != "joined:beta " {
		t.Fatalf("event stream with the token: %s", describe(ms))
	}
}

// TestNoTokenNoCheck: an API without a token serves everyone, as before.
func TestNoTokenNoCheck(t *testing.T) {
	tb := newTable(t, pulse.DefaultTiming())
	_, c := serveAPI(t, Config{Source: tb})
	if _, err := c.Sessions(context.Background(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "  "+testToken+"\n")); err != nil || tok != testToken {
		t.Errorf("ReadTokenFile = %q, %v", tok, err)
	}
	for name, content := range map[string]string{"empty": " \n", "two": "a b\n"} {
		if _, err := ReadTokenFile(write(name, content)); err == nil {
			t.Errorf("ReadTokenFile of %q succeeded", content)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadTokenFile of a missing file succeeded")
	}
}
