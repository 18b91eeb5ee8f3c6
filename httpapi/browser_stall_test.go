//go:build linux

package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/httpapi/ui"
	"github.com/pulsehq/pulse/server"
)

// TestDashboardShowsAStall stops this whole test process with SIGSTOP for
// longer than the server's timeout, as a paused VM would be stopped, with
// the dashboard open in a headless Chromium (another process, which goes
// on). On resume the server notices its stall, holds its judgments, and
// the page shows a stall event named (server) in its feed, leaves the
// table alone, throws nothing, and, once the clients beat again, shows
// every session still alive.
func TestDashboardShowsAStall(t *testing.T) {
	browser := findBrowser(t)
	resumed := make(chan time.Time, 1)
	log := slog.New(onMessage{"stall: judging again", resumed})
	srv, addr := serveHeartbeats(t, server.Config{
		Timing: pulse.Timing{Interval: 100 * time.Millisecond, Misses: 5}, // dead after 500 ms
		Logger: log,
	})
	api, err := httpapi.New(httpapi.Config{Source: srv, Dashboard: ui.Handler(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})
	ids := map[string]string{}
	for _, name := range []string{"web-1", "web-2"} {
		// Without acks: stopped with the server, a client would
		// otherwise find it lost on resume and register anew.
		ctx, cancel := context.WithTimeout(context.Background(), browserPatience)
		c, err := client.Dial(ctx, addr, name, client.WithoutAck())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ids[name] = c.Status().SessionID
	}

	page := openPage(t, browser)
	page.do(chromedp.Navigate(hs.URL + "/"))
	page.waitFor("the stream is live with both sessions",
		`document.querySelector('#conn[data-status="live"]') && document.querySelectorAll('#rows tr[data-state="alive"]').length === 2`)

	stopSelf(t, 1500*time.Millisecond)

	page.waitFor("the stall in the feed",
		`(li => li && li.querySelector(".name").textContent === "(server)" && li.querySelector(".reason").textContent === "late_wakeup")(document.querySelector('#feed li[data-kind="stall"]'))`)
	var at time.Time
	select {
	case at = <-resumed:
	case <-time.After(browserPatience):
		t.Fatal("the server never judged again after its stall")
	}
	// Both sessions beat after judgments resumed: neither was declared dead.
	for name, id := range ids {
		for deadline := time.Now().Add(browserPatience); ; time.Sleep(10 * time.Millisecond) {
			s, ok := srv.Session(name)
			if !ok || s.ID != id {
				t.Fatalf("session %s of %s is gone after the stall", id, name)
			}
			if s.LastBeat.After(at) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not beat after judgments resumed", name)
			}
		}
	}
	page.waitFor("both sessions still listed", `document.querySelectorAll('#rows tr[data-name]').length === 2`)
	if page.eval(`!!document.querySelector('#feed li[data-kind="dead"]')`) {
		t.Errorf("a death in the feed:\n%s", page.describe())
	}
	page.checkNoErrors()
}

// stopSelf stops this process with SIGSTOP and has a helper resume it
// with SIGCONT d after it is seen stopped.
func stopSelf(t *testing.T, d time.Duration) {
	t.Helper()
	pid := os.Getpid()
	script := fmt.Sprintf(`until grep -q '^[0-9]* (.*) T ' /proc/%d/stat; do sleep 0.01; done; sleep %g; kill -CONT %d`, pid, d.Seconds(), pid)
	helper := exec.Command("sh", "-c", script)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil { // resumed: the helper is done
		t.Fatalf("the helper that resumes the test: %v", err)
	}
}

// onMessage is a log handler that sends the time of the first record with
// its message.
type onMessage struct {
	msg string
	at  chan<- time.Time
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h onMessage) WithGroup(string) slog.Handler            { return h }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.at <- r.Time:
		default:
		}
	}
	return nil
}
