package httpapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/httpapi/ui"
	"github.com/pulsehq/pulse/internal/redistest"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/server"
)

// TestDashboardShowsTheStoreUnreachable opens the dashboard of one node of
// a two-node cluster on a real Redis: the header names the node and counts
// the nodes; with Redis stopped, a banner says the page shows what the node
// last knew, and the table still lists both sessions; with Redis back, the
// banner goes.
func TestDashboardShowsTheStoreUnreachable(t *testing.T) {
	browser := findBrowser(t)
	rs := redistest.Start(t)
	n1 := startClusterNode(t, rs.URL(), "n1")
	n2 := startClusterNode(t, rs.URL(), "n2")
	dialNode(t, n1.hb, "web-1")
	dialNode(t, n2.hb, "web-2")

	page := openPage(t, browser)
	page.do(chromedp.Navigate(n1.url + "/"))
	const banner = `(b => b.offsetHeight > 0 && !b.hidden)(document.getElementById("store-banner"))`
	const header = `document.getElementById("cluster").textContent === "node n1 · 2 nodes" && document.getElementById("cluster").offsetHeight > 0`
	page.waitFor("both sessions listed, the node and the cluster's size in the header",
		rowsJS+` === "web-1:alive web-2:alive" && document.body.dataset.store === "ok" && `+header)
	if page.eval(banner) {
		t.Errorf("a store banner while the store is ok:\n%s", page.describe())
	}

	rs.Stop()
	page.waitFor("the store banner", banner+` && document.getElementById("store-banner").textContent.includes("Node n1 cannot reach")`)
	if !page.eval(header) || page.evalString(rowsJS) != "web-1:alive web-2:alive" {
		t.Errorf("with the store unreachable the page no longer shows the node's last view:\n%s", page.describe())
	}

	rs.Restart()
	page.waitFor("the banner gone with the store back", `document.body.dataset.store === "ok" && !(`+banner+`) && `+header)
	page.checkNoErrors()
}

// clusterNode is a node of a cluster in the test process: a server, its
// membership through Redis, and its API with the dashboard.
type clusterNode struct {
	hb, url string
}

func startClusterNode(t *testing.T, url, name string) clusterNode {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: 200 * time.Millisecond, Misses: 10}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	n, err := redis.New(srv, redis.Config{URL: url, Node: name, TTL: time.Second, Interval: 200 * time.Millisecond,
		Addr: ln.Addr().String(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Source: n, Dashboard: ui.Handler(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		api.Close()
		hs.Close()
		_ = srv.Shutdown(ctx)
		_ = n.Close(ctx)
	})
	return clusterNode{hb: ln.Addr().String(), url: hs.URL}
}

// dialNode registers a session on a node, closed when the test ends.
func dialNode(t *testing.T, addr, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), browserPatience)
	defer cancel()
	c, err := client.Dial(ctx, addr, name, client.WithBackoff(50*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		t.Fatal(fmt.Errorf("dial %s as %s: %w", addr, name, err))
	}
	t.Cleanup(func() { c.Close() })
}
