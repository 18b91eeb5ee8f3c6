package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/internal/redistest"
)

// TestLsWarnsWhileTheStoreIsUnreachable runs a node of a cluster on a real
// Redis and stops Redis: pulse ls still lists the node's view on stdout,
// table or JSON untouched, and says once on stderr that it is the node's
// last view; with Redis back, the warning goes.
func TestLsWarnsWhileTheStoreIsUnreachable(t *testing.T) {
	rs := redistest.Start(t)
	srv := start(t, "serve", "--listen", "127.0.0.1:0", "--redis", rs.URL(), "--node", "n1",
		"--node-ttl", "1s", "--interval", "200ms")
	web := srv.await(t, "http listening", nil)["addr"].(string)
	addr := srv.await(t, "listening", nil)["addr"].(string)
	go func() {
		for range srv.logs { // the node logs on; never let it block on stderr
		}
	}()
	a := start(t, "agent", "--server", addr, "--name", "web-1")
	a.await(t, "registered", nil)
	cl, err := httpapi.NewClient(web, nil)
	if err != nil {
		t.Fatal(err)
	}
	storeIs := func(want string) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			info, err := cl.Cluster(ctx)
			cancel()
			if err == nil && info.Store == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the node's store is not %q within %v: %+v, %v", want, patience, info, err)
			}
			time.Sleep(20 * time.Millisecond) // polling a real process
		}
	}
	const warning = "warning: node n1 cannot reach the cluster's store"
	// ls checks one listing, table and JSON: web-1 on stdout, and on
	// stderr the warning exactly when warned.
	ls := func(warned bool) {
		t.Helper()
		out, errOut, code := pulseOnce(t, "ls", "--http", web)
		if code != 0 || !strings.Contains(out, "web-1 ") || strings.Contains(out, "warning") {
			t.Errorf("ls: exit %d\nstdout:\n%sstderr:\n%s", code, out, errOut)
		}
		if got := strings.Count(errOut, warning); got != map[bool]int{true: 1}[warned] || (!warned && errOut != "") {
			t.Errorf("ls (store unreachable: %v): stderr %q", warned, errOut)
		}
		out, errOut, code = pulseOnce(t, "ls", "--http", web, "-o", "json")
		var list []httpapi.Session
		if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 1 || list[0].Name != "web-1" || list[0].Node != "n1" {
			t.Errorf("ls -o json: exit %d, %v\nstdout:\n%s", code, err, out)
		}
		if got := strings.Count(errOut, warning); got != map[bool]int{true: 1}[warned] || (!warned && errOut != "") {
			t.Errorf("ls -o json (store unreachable: %v): stderr %q", warned, errOut)
		}
	}

	storeIs("ok")
	ls(false)
	rs.Stop()
	storeIs("unreachable")
	ls(true)
	rs.Restart()
	storeIs("ok")
	ls(false)
}
