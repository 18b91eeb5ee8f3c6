//go:build linux

package server

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pulsehq/pulse"
)

// TestEventLoopCatchUp: the event loop is kept from running while 50
// clients beat, as in a stall, so that their beats wait in the sockets.
// A catch-up asked for then is done only once every one of those beats
// has been read, though the loop's polls (cut to 8 events here) need
// several passes to see them all.
func TestEventLoopCatchUp(t *testing.T) {
	if testTransport != TransportEventLoop {
		t.Skip("the event loop's catch-up")
	}
	var (
		mu     sync.Mutex
		park   chan struct{} // while set, the loop waits on it before polling
		parked = make(chan struct{}, 1)
	)
	cfg := Config{Timing: pulse.Timing{Interval: time.Minute, Misses: 5}}
	cfg.beforePoll = func(l *eventLoop) {
		l.events = l.events[:8]
		mu.Lock()
		p := park
		mu.Unlock()
		if p != nil {
			parked <- struct{}{}
			<-p
		}
	}
	ts := startServer(t, cfg)
	const clients, beats = 50, 3
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = ts.dial(t)
		conns[i].say(t, fmt.Sprintf(`HELLO c%02d {"ack":false}`, i))
		conns[i].hear(t, "WELCOME ")
	}

	mu.Lock()
	park = make(chan struct{})
	mu.Unlock()
	ts.loop.wake()
	<-parked
	for _, c := range conns {
		c.say(t, "BEAT\nBEAT\nBEAT")
	}
	waitInput(t, ts.loop, clients, len("BEAT\n")*beats)

	got := make(chan map[string]uint64, 1)
	ts.catchUp(func() {
		counts := map[string]uint64{}
		for _, s := range ts.Sessions() {
			counts[s.Name] = s.Beats
		}
		got <- counts
	})
	mu.Lock()
	close(park)
	park = nil
	mu.Unlock()

	select {
	case counts := <-got:
		if len(counts) != clients {
			t.Fatalf("%d sessions, want %d", len(counts), clients)
		}
		for name, n := range counts {
			if n != beats {
				t.Errorf("%s: %d beats read when the catch-up was done, want %d", name, n, beats)
			}
		}
	case <-time.After(patience):
		t.Fatal("the catch-up was never done")
	}
}

// waitInput waits until each of the loop's n connections has exactly
// bytes unread in its socket.
func waitInput(t *testing.T, l *eventLoop, n, bytes int) {
	t.Helper()
	for deadline := time.Now().Add(patience); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		ready := 0
		for _, c := range l.conns.byFD {
			if c == nil {
				continue
			}
			if q, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ); err == nil && q == bytes {
				ready++
			}
		}
		l.mu.Unlock()
		if ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections have their input", ready, n)
		}
	}
}
