package client_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/client"
	"github.com/pulsehq/pulse/server"
)

// TestTLSToAPlainServer: a client with TLS on, dialling a server without
// it, is told that the server does not speak TLS, not only that the first
// record was not a handshake.
func TestTLSToAPlainServer(t *testing.T) {
	srv, err := server.New(server.Config{Logger: quiet, Timing: pulse.Timing{Interval: 100 * time.Millisecond, Misses: 5}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var mu sync.Mutex
	var last error
	_, err = client.Dial(ctx, ln.Addr().String(), "web-1", client.WithTLS(&tls.Config{}),
		client.WithBackoff(time.Millisecond, time.Millisecond), client.OnStatus(func(s client.Status) {
			if s.State == client.StateBackoff && s.Err != nil {
				mu.Lock()
				last = s.Err
				mu.Unlock()
				cancel()
			}
		}))
	if err == nil {
		t.Fatal("a TLS client registered with a plain server")
	}
	mu.Lock()
	defer mu.Unlock()
	if last == nil || !strings.Contains(last.Error(), "does not speak TLS") {
		t.Fatalf("attempt failed with %v (Dial: %v), want it to say the server does not speak TLS", last, err)
	}
}
