package server

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestLoopFloodAfterERRIsReset: a client told ERR that keeps sending is not
// drained for the whole linger timeout, which would let thousands of such
// flooders take the event loop from everyone else; past loopMaxDrain bytes
// it is reset, and its writes fail.
func TestLoopFloodAfterERRIsReset(t *testing.T) {
	ts := startServer(t, Config{Transport: TransportEventLoop, MaxBeatRate: -1})
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("BOGUS\n")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(patience))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ERR bad_command") {
		t.Fatalf("got %q, %v; want ERR bad_command", line, err)
	}
	// Flood: the server lingers, draining, and must give up on us after
	// about loopMaxDrain bytes. Without the limit it would read all of
	// this for the linger timeout, and the writes would succeed.
	chunk := []byte(strings.Repeat("BEAT\n", 1<<12)) // 20 KiB
	const limit = 64 << 20                           // far beyond the socket buffers (a few MiB)
	written := 0
	_ = nc.SetWriteDeadline(time.Now().Add(patience))
	start := time.Now()
	for written < limit {
		n, err := nc.Write(chunk)
		written += n
		if err != nil {
			t.Logf("reset after %d bytes, %v after ERR: %v", written, time.Since(start), err)
			return
		}
	}
	t.Fatalf("the server read %d bytes after ERR in %v without resetting the connection", written, time.Since(start))
}
