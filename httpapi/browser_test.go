package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/httpapi/ui"
	"github.com/pulsehq/pulse/server"
)

// browserPatience bounds each wait on the page: not a timing assertion,
// only a way to fail instead of hanging if what must happen does not.
const browserPatience = 20 * time.Second

// TestDashboardInBrowser opens the dashboard in a real headless Chromium
// against a real server and real clients, and watches a session go suspect,
// then dead, and another leave. With PULSE_UPDATE_SCREENSHOT=1 it also
// writes the screenshot it takes to docs/dashboard.png.
func TestDashboardInBrowser(t *testing.T) {
	browser := findBrowser(t)
	quiet := slog.New(slog.DiscardHandler)

	// A pulse server with quick timing: suspect 300 ms after the last
	// beat, dead after 1 s.
	srv, addr := serveHeartbeats(t, server.Config{
		Timing: pulse.Timing{Interval: 200 * time.Millisecond, Misses: 5},
		Logger: quiet,
	})

	api, err := httpapi.New(httpapi.Config{Source: srv, Dashboard: ui.Handler(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Close()
		hs.Close()
	})

	agent := func(name string, meta map[string]string) *client.Client {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), browserPatience)
		defer cancel()
		c, err := client.Dial(ctx, addr, name, client.WithMeta(meta))
		if err != nil {
			t.Fatalf("dial %s: %v", name, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// One session before the page opens, so that it comes from the first
	// load; the rest after, so that they come from the event stream.
	agent("db-1", map[string]string{"role": "db", "region": "eu-west"})

	page := openPage(t, browser)
	page.do(chromedp.Navigate(hs.URL + "/"))
	page.waitFor("the stream is live and db-1 is listed",
		`document.querySelector('#conn[data-status="live"]') && document.querySelector('tr[data-name="db-1"][data-state="alive"]')`)
	// A single server is no cluster: no node in the header, no banner.
	page.waitFor("the page read v1/cluster", `document.body.dataset.store === "none"`)
	if !page.eval(`document.getElementById("cluster").hidden && document.getElementById("store-banner").offsetHeight === 0`) {
		t.Errorf("a single server's page shows a cluster or a store banner")
	}

	agent("web-1", map[string]string{"role": "web", "region": "eu-west", "version": "1.4.2"})
	web2 := agent("web-2", map[string]string{"role": "web", "region": "us-east", "version": "1.4.2"})

	// The silent session goes suspect, and is dead 700 ms later, when its
	// row leaves the table. The screenshot must show it suspect: if it died
	// before the screenshot was taken (a very slow machine), try again with
	// a new one.
	var shot []byte
	for attempt := 1; ; attempt++ {
		silent := startSilent(t, addr, "silent-1")
		page.waitFor("4 rows, silent-1 alive",
			`document.querySelectorAll('#rows tr[data-name]').length === 4 && document.querySelector('tr[data-name="silent-1"][data-state="alive"]')`)
		page.waitForCounts(4, 0)

		silent.stopBeating()
		page.waitFor("silent-1 suspect", `document.querySelector('tr[data-name="silent-1"][data-state="suspect"]')`)
		page.waitForCounts(3, 1)
		page.waitFor("the suspect event in the feed", `document.querySelector('#feed li[data-kind="suspect"][data-name="silent-1"]')`)
		shot = page.run(chromedp.FullScreenshot(100))
		if page.eval(`!!document.querySelector('tr[data-name="silent-1"][data-state="suspect"]')`) {
			break
		}
		if attempt == 3 {
			t.Fatal("silent-1 died three times before its screenshot as a suspect was taken")
		}
		t.Logf("silent-1 died before the screenshot was taken; again (attempt %d)", attempt+1)
		page.waitFor("silent-1 gone", `!document.querySelector('tr[data-name="silent-1"]')`)
	}
	saveScreenshot(t, shot)

	page.waitFor("silent-1 gone and its death in the feed",
		`!document.querySelector('tr[data-name="silent-1"]') && document.querySelector('#feed li[data-kind="dead"][data-name="silent-1"]')`)
	page.waitForCounts(3, 0)

	if err := web2.Close(); err != nil {
		t.Fatal(err)
	}
	page.waitFor("web-2 gone and its leaving in the feed",
		`!document.querySelector('tr[data-name="web-2"]') && document.querySelector('#feed li[data-kind="left"][data-name="web-2"]')`)
	page.waitForCounts(2, 0)

	if got := page.evalString(rowsJS); got != "db-1:alive web-1:alive" {
		t.Errorf("rows %q, want db-1 and web-1 alive", got)
	}

	// The filter box narrows the table, and clearing it shows all again.
	page.do(chromedp.SendKeys(chromedp.ID("filter"), "web"))
	page.waitFor("only web-1 under the filter", rowsJS+` === "web-1:alive" && document.getElementById("shown").textContent === "1 of 2 shown"`)
	page.do(chromedp.Evaluate[chromedp.Void](`(f => { f.value = ""; f.dispatchEvent(new Event("input")) })(document.getElementById("filter"))`))
	page.waitFor("both rows without the filter", rowsJS+` === "db-1:alive web-1:alive"`)

	// The kick button, its confirmation accepted.
	page.do(chromedp.Evaluate[chromedp.Void](`window.confirm = () => true; document.querySelector('tr[data-name="web-1"] button.kick').click()`))
	page.waitFor("web-1 gone and its kick in the feed",
		`!document.querySelector('tr[data-name="web-1"]') && document.querySelector('#feed li[data-kind="kicked"][data-name="web-1"]')`)
	page.waitForCounts(1, 0)

	if got := page.evalString(rowsJS); got != "db-1:alive" {
		t.Errorf("rows %q, want db-1 alive", got)
	}
	// The feed is newest first.
	if got := page.evalString(`[...document.querySelectorAll('#feed li')].slice(0, 2).map(li => li.dataset.kind).join(" ")`); got != "kicked left" {
		t.Errorf("the feed starts with %q, want the newest events, kicked then left", got)
	}
	page.checkNoErrors()
}

// rowsJS lists the rows of the table as "name:state" separated by spaces.
const rowsJS = `[...document.querySelectorAll('#rows tr[data-name]')].map(tr => tr.dataset.name + ":" + tr.dataset.state).join(" ")`

// findBrowser returns the path of a Chromium or Chrome. Without one, the
// test is skipped on a developer's machine and fails in CI, which must run
// it (scripts/test.sh installs Chromium).
// serveHeartbeats runs a pulse server configured by cfg on a loopback
// port until the test ends, and returns it with its address.
func serveHeartbeats(t *testing.T, cfg server.Config) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return srv, ln.Addr().String()
}

func findBrowser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if _, ci := os.LookupEnv("CI"); ci {
		t.Fatal("no Chromium or Chrome found, and CI must run the browser test: install Debian's chromium (scripts/test.sh does)")
	}
	t.Skip("no Chromium or Chrome found: install Debian's chromium (scripts/test.sh does) to run the browser test")
	return ""
}

// tab is a tab of a headless browser.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // exceptions and console errors of the page
}

func openPage(t *testing.T, browser string) *tab {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.WindowSize(1400, 900),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox to root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	p := &tab{t: t, ctx: ctx}

	// Starting the browser first makes the subscriptions below see the
	// page from its first line.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", browser, err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			p.addError(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
				continue
			}
			var args []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			p.addError(fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
		}
	}()
	return p
}

func (p *tab) addError(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.errors = append(p.errors, s)
}

// checkNoErrors fails the test if the page threw or logged an error.
func (p *tab) checkNoErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errors {
		p.t.Errorf("the page said: %s", e)
	}
}

func (p *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *tab) run(a chromedp.Action[[]byte]) []byte {
	p.t.Helper()
	b, err := chromedp.Run(p.ctx, a)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

func (p *tab) eval(js string) bool {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func (p *tab) evalString(js string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls the page, at each animation frame, until the JavaScript
// expression cond is truthy. If it is not within browserPatience, the test
// fails with what the page shows.
func (p *tab) waitFor(what, cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(browserPatience)))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v\nthe page shows:\n%s", what, err, p.describe())
	}
}

// waitForCounts waits until the counts widget shows alive and suspect
// sessions, and their total.
func (p *tab) waitForCounts(alive, suspect int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("counts alive %d, suspect %d", alive, suspect), fmt.Sprintf(
		`document.getElementById("count-alive").textContent === "%d" && document.getElementById("count-suspect").textContent === "%d" && document.getElementById("count-total").textContent === "%d"`,
		alive, suspect, alive+suspect))
}

// describe returns the page's status, counts, rows and latest events, for
// a failure message.
func (p *tab) describe() string {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`[
		"status: " + document.getElementById("conn").dataset.status,
		"counts: " + ["alive", "suspect", "total"].map(k => k + "=" + document.getElementById("count-" + k).textContent).join(" "),
		...[...document.querySelectorAll("#rows tr[data-name]")].map(tr => "row: " + tr.innerText.replace(/\s+/g, " ")),
		...[...document.querySelectorAll("#feed li")].slice(0, 10).map(li => "event: " + li.innerText.replace(/\s+/g, " ")),
	].join("\n")`))
	if err != nil {
		return fmt.Sprintf("(cannot read the page: %v)", err)
	}
	return s
}

// saveScreenshot keeps the screenshot in the test's temporary directory,
// and in docs/dashboard.png when PULSE_UPDATE_SCREENSHOT=1.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(tmp, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PULSE_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote docs/dashboard.png")
	}
}

// silentSession is a session spoken by hand that beats until told to stop,
// then keeps its connection open without a word, as a hung process would.
type silentSession struct {
	stop chan struct{}
	done chan struct{}
}

func startSilent(t *testing.T, addr, name string) *silentSession {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := io.WriteString(nc, "HELLO "+name+` {"meta":{"role":"worker"}}`+"\n"); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(browserPatience))
	r := bufio.NewReader(nc)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "WELCOME ") {
		t.Fatalf("HELLO %s answered %q, %v", name, line, err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	// The ACKs are read and dropped, so that they never fill the socket.
	go func() { _, _ = io.Copy(io.Discard, r) }()

	s := &silentSession{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if _, err := io.WriteString(nc, "BEAT\n"); err != nil {
					return
				}
			case <-s.stop:
				return
			}
		}
	}()
	t.Cleanup(s.stopBeating)
	return s
}

// stopBeating stops the beats and returns once the last one is sent.
func (s *silentSession) stopBeating() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}
