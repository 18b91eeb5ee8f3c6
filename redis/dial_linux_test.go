package redis_test

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/redis"
	"github.com/pulsehq/pulse/server"
)

// blackhole returns the address of a loopback port whose accept queue is
// full: a dial to it is never answered, as to a Redis behind a dropped
// route, until the dialer gives up.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // never accepted
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := sa.(*syscall.SockaddrInet4)
	for range 4 { // fill the queue; later SYNs are dropped
		c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(c) })
		_ = syscall.Connect(c, addr) // EINPROGRESS
	}
	return "127.0.0.1:" + strconv.Itoa(addr.Port)
}

// A Redis that does not answer the dial at all holds the node no longer
// than a round trip's timeout (half the ttl) per attempt: New returns, as
// a single server, well within a few ttls, and says the store is
// unreachable. go-redis's default of five dials per attempt held it ten
// timeouts (6 s at this ttl, 25 s at the default).
func TestUnansweredDialDoesNotHoldTheNode(t *testing.T) {
	url := "redis://" + blackhole(t) + "/0"
	srv, err := server.New(server.Config{Timing: pulse.Timing{Interval: interval, Misses: 10}, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := redis.New(srv, redis.Config{URL: url, Node: "a", TTL: ttl, Interval: interval, Logger: logger()})
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	took := time.Since(start)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		srv.Close()
		if err := n.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if took > 3*ttl {
		t.Errorf("New took %v against a Redis that never answers the dial; want under %v (two dials of ttl/2)", took, 3*ttl)
	}
	if c := n.Cluster(context.Background()); c.Store != "unreachable" {
		t.Errorf("store %q, want unreachable", c.Store)
	}
}
