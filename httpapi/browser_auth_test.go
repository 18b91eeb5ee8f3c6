package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/httpapi/ui"
	"github.com/pulsehq/pulse/server"
)

// requestLog records what the API was asked, to check what the page sent.
type requestLog struct {
	mu       sync.Mutex
	urls     []string
	resumeAt []string // the Last-Event-ID headers of the event streams
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.urls = append(l.urls, r.URL.String())
		if r.URL.Path == "/v1/events" {
			l.resumeAt = append(l.resumeAt, r.Header.Get("Last-Event-ID"))
		}
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// TestDashboardWithToken opens the dashboard of an API that wants a token
// in a real headless Chromium: the page asks for the token, the test types
// a wrong one, the page asks again, the test types the token, and the page
// shows the sessions and then live events from
// the stream, which it reads with the token; when the stream is cut, it
// resumes with Last-Event-ID and misses nothing; a reload of the tab asks
// no more. The token never appears in a URL.
func TestDashboardWithToken(t *testing.T) {
	const token = "s3cret-token-for-the-browser-test"
	browser := findBrowser(t)
	quiet := slog.New(slog.DiscardHandler)
	srv, addr := serveHeartbeats(t, server.Config{Timing: pulse.Timing{Interval: 200 * time.Millisecond, Misses: 5}, Logger: quiet})
	api, err := httpapi.New(httpapi.Config{Source: srv, Dashboard: ui.Handler(), Logger: quiet, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	var reqs requestLog
	hs := httptest.NewServer(reqs.wrap(api))
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})
	agent := func(name string) *client.Client {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), browserPatience)
		defer cancel()
		c, err := client.Dial(ctx, addr, name)
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	agent("db-1")

	tab := openPage(t, browser)
	asked := make(chan string, 10)
	dialogs := chromedp.Events(tab.ctx, page.JavascriptDialogOpening)
	go func() {
		n := 0
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			asked <- ev.Message
			// A typo first, then the token.
			answer := token
			if n++; n == 1 {
				answer = "a-typo-" + token
			}
			// Answer from another goroutine than the one receiving events.
			go func() {
				_ = chromedp.Do(tab.ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
					_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true, PromptText: answer})
					return err
				}))
			}()
		}
	}()

	tab.do(chromedp.Navigate(hs.URL + "/"))
	for _, want := range []string{"wants its API token", "That token was not accepted"} {
		select {
		case msg := <-asked:
			if !strings.Contains(msg, want) {
				t.Errorf("the prompt says %q, want %q", msg, want)
			}
		case <-time.After(browserPatience):
			t.Fatalf("the page never asked for the token (%q); it shows:\n%s", want, tab.describe())
		}
	}
	tab.waitFor("the stream is live and db-1 is listed",
		`document.querySelector('#conn[data-status="live"]') && document.querySelector('tr[data-name="db-1"][data-state="alive"]')`)

	web1 := agent("web-1")
	tab.waitFor("web-1 joins, from the stream", `document.querySelector('tr[data-name="web-1"]') && document.querySelector('#feed li[data-kind="joined"][data-name="web-1"]')`)

	// Cut every connection, the stream's too: it resumes where it was.
	hs.CloseClientConnections()
	if err := web1.Close(); err != nil {
		t.Fatal(err)
	}
	agent("web-2")
	tab.waitFor("web-1's leaving and web-2's join, across the cut",
		`!document.querySelector('tr[data-name="web-1"]') && document.querySelector('#feed li[data-kind="left"][data-name="web-1"]') && document.querySelector('tr[data-name="web-2"]')`)
	tab.waitForCounts(2, 0)
	reqs.mu.Lock()
	resumed := false
	for _, id := range reqs.resumeAt {
		resumed = resumed || id != ""
	}
	reqs.mu.Unlock()
	if !resumed {
		t.Errorf("no event stream was resumed with Last-Event-ID: %q", reqs.resumeAt)
	}

	// A reload of the tab keeps the token: no second prompt.
	tab.do(chromedp.Reload())
	tab.waitFor("live again after the reload", `document.querySelector('#conn[data-status="live"]') && document.querySelector('tr[data-name="web-2"]')`)
	select {
	case msg := <-asked:
		t.Errorf("asked again after the reload: %q", msg)
	default:
	}
	reqs.mu.Lock()
	for _, u := range reqs.urls {
		if strings.Contains(u, token) {
			t.Errorf("the token is in a URL: %s", u)
		}
	}
	reqs.mu.Unlock()
	tab.checkNoErrors()
}
