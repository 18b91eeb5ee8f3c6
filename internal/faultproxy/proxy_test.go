package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// patience bounds every wait: a way to fail instead of hanging.
const patience = 10 * time.Second

// echo starts a line echo server and returns its address and a channel of
// the lines it received.
func echo(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	done := make(chan struct{})
	conns := make(chan net.Conn, 100)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					lines <- sc.Text()
					if _, err := c.Write([]byte(sc.Text() + "\n")); err != nil {
						return
					}
				}
				lines <- "<eof>"
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), lines
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func send(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
}

func recvLine(t *testing.T, c net.Conn, r *bufio.Reader, within time.Duration) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func expectLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case got := <-lines:
		if got != want {
			t.Fatalf("server got %q, want %q", got, want)
		}
	case <-time.After(patience):
		t.Fatalf("server never got %q", want)
	}
}

func expectNoLine(t *testing.T, lines <-chan string, during time.Duration) {
	t.Helper()
	select {
	case got := <-lines:
		t.Fatalf("server got %q through a blackhole", got)
	case <-time.After(during):
	}
}

func TestPassesBothWays(t *testing.T) {
	target, lines := echo(t)
	p := start(t, target)
	c, r := dial(t, p.Addr())
	send(t, c, "hello")
	expectLine(t, lines, "hello")
	got, err := recvLine(t, c, r, patience)
	if err != nil || got != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if st := p.Stats(); st.Open != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 open, 1 accepted", st)
	}
	// A half-close reaches the server, and the server's close comes back.
	c.(*net.TCPConn).CloseWrite()
	expectLine(t, lines, "<eof>")
	if _, err := recvLine(t, c, r, patience); !errors.Is(err, io.EOF) {
		t.Fatalf("after the server closed: %v, want EOF", err)
	}
}

func TestBlackholeDropsAndKeepsTheConnectionOpen(t *testing.T) {
	target, lines := echo(t)
	p := start(t, target)
	c, r := dial(t, p.Addr())

	p.Blackhole(Upstream, true)
	send(t, c, "lost")
	expectNoLine(t, lines, 200*time.Millisecond)
	p.Heal()
	send(t, c, "found")
	expectLine(t, lines, "found")
	if got, err := recvLine(t, c, r, patience); err != nil || got != "found" {
		t.Fatalf("after healing: %q, %v", got, err)
	}

	p.Blackhole(Downstream, true)
	send(t, c, "one-way")
	expectLine(t, lines, "one-way") // upstream still passes
	if got, err := recvLine(t, c, r, 200*time.Millisecond); err == nil {
		t.Fatalf("client got %q through a downstream blackhole", got)
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("client read: %v, want a timeout (the connection stays open)", err)
	}
	if st := p.Stats(); st.Open != 1 {
		t.Fatalf("%d open through a blackhole, want 1", st.Open)
	}
}

func TestBlackholeLosesTheFIN(t *testing.T) {
	target, lines := echo(t)
	p := start(t, target)
	c, _ := dial(t, p.Addr())
	send(t, c, "a")
	expectLine(t, lines, "a")
	p.Blackhole(Both, true)
	c.Close()
	expectNoLine(t, lines, 200*time.Millisecond) // no "<eof>"
	if n := p.Cut(); n != 1 {
		t.Fatalf("cut %d links, want 1", n)
	}
	expectLine(t, lines, "<eof>") // the cut resets the server's side
}

func TestLatencyDelaysInOrder(t *testing.T) {
	target, lines := echo(t)
	p := start(t, target)
	c, r := dial(t, p.Addr())
	const lat, jit = 100 * time.Millisecond, 50 * time.Millisecond
	p.SetLatency(Both, lat, jit)
	start := time.Now()
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		send(t, c, s)
	}
	for _, want := range []string{"1", "2", "3", "4", "5"} {
		got, err := recvLine(t, c, r, patience)
		if err != nil || got != want {
			t.Fatalf("got %q, %v, want %q in order", got, err, want)
		}
		expectLine(t, lines, want)
	}
	if rtt := time.Since(start); rtt < 2*lat {
		t.Fatalf("round trip %v through %v each way", rtt, lat)
	}
	p.SetLatency(Both, 0, 0)
	start = time.Now()
	send(t, c, "fast")
	if _, err := recvLine(t, c, r, patience); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt >= 2*lat {
		t.Fatalf("round trip %v after removing the latency", rtt)
	}
	expectLine(t, lines, "fast")
}

func TestCutResetsAndRefuseRejects(t *testing.T) {
	target, lines := echo(t)
	p := start(t, target)
	c, r := dial(t, p.Addr())
	send(t, c, "x")
	expectLine(t, lines, "x")
	if _, err := recvLine(t, c, r, patience); err != nil {
		t.Fatal(err)
	}
	if n := p.Cut(); n != 1 {
		t.Fatalf("cut %d, want 1", n)
	}
	if _, err := recvLine(t, c, r, patience); err == nil {
		t.Fatal("read on a cut connection succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a cut connection stayed open")
	}
	expectLine(t, lines, "<eof>")

	p.Refuse(true)
	expectRefused(t, p.Addr())
	if st := p.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v, want 1 refused", st)
	}
	p.Refuse(false)
	c3, r3 := dial(t, p.Addr())
	send(t, c3, "again")
	if got, err := recvLine(t, c3, r3, patience); err != nil || got != "again" {
		t.Fatalf("after refusing: %q, %v", got, err)
	}
}

func TestUnreachableTargetIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := start(t, target)
	expectRefused(t, p.Addr())
}

// expectRefused checks that a connection to addr is reset: the dial fails
// (the reset came before connect returned) or the first read does.
func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read: %v, want the connection closed", err)
	}
}

func TestCloseStopsEveryGoroutine(t *testing.T) {
	target, lines := echo(t)
	before := runtime.NumGoroutine()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, _ := dial(t, p.Addr())
		send(t, c, "hi")
		expectLine(t, lines, "hi")
	}
	p.Blackhole(Both, true) // links stuck in a partition are closed too
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("%d links open after Close", st.Open)
	}
	// The proxy's goroutines are gone once Close returns; the echo
	// server's end as it sees the resets, so poll for those.
	deadline := time.Now().Add(patience)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), before)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("the proxy still accepts after Close")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
