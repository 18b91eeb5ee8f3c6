package redis_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/internal/redistest"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/server"
)

// Close stops every goroutine a node started, its Redis client's
// included, also after an outage of the store: the process's goroutines
// return to what they were before the node.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	rs := redistest.Start(t)
	before := runtime.NumGoroutine()

	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: interval, Misses: 10}, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	n, err := redis.New(srv, redis.Config{URL: rs.URL(), Node: "a", TTL: ttl, Interval: interval, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, ln.Addr().String(), "a1")
	if _, err := n.Kick("nobody", "test"); err == nil {
		t.Error("kicking a name no node holds succeeded")
	}
	rs.Stop() // an outage: the reader and the writer fail and retry
	eventually(t, "the node says the store is unreachable", func() (bool, string) {
		cl := n.Cluster(context.Background())
		return cl.Store == "unreachable", cl.Store
	})
	rs.Restart()
	eventually(t, "the node back in the cluster", func() (bool, string) {
		cl := n.Cluster(context.Background())
		return cl.Store == "ok", cl.Store
	})
	c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-served
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the goroutines back to where they were", func() (bool, string) {
		now := runtime.NumGoroutine()
		if now <= before {
			return true, ""
		}
		buf := make([]byte, 1<<16)
		return false, fmt.Sprintf("%d goroutines, %d before:\n%s", now, before, buf[:runtime.Stack(buf, true)])
	})
}
