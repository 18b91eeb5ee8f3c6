//go:build linux

package server

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopPair is one connection of an event loop that the test drives by
// hand: the loop's end of a socket pair, and the client's.
type loopPair struct {
	c      *loopConn
	client int
}

// newHandLoop returns an event loop whose goroutine does not run: the test
// calls readable and flush itself, in the order it chooses.
func newHandLoop(t *testing.T) *eventLoop {
	t.Helper()
	srv, err := New(Config{Logger: quiet, Transport: TransportEventLoop, MaxBeatRate: -1}) // clients here pipeline thousands of beats
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.reg.Close() })
	return &eventLoop{
		srv:     srv,
		epfd:    -1, // not polled: asking for EPOLLOUT fails, harmlessly
		start:   time.Now(),
		scratch: make([]byte, loopReadSize),
		reply:   make([]byte, 0, loopReplySize),
		watched: make(map[*loopConn]struct{}),
	}
}

// pair connects a client to l through a socket pair whose loop end has the
// smallest send buffer, and registers it as name.
func (l *eventLoop) pair(t *testing.T, name string) *loopPair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 1); err != nil {
		t.Fatal(err)
	}
	p := &loopPair{c: &loopConn{loop: l, fd: fds[0]}, client: fds[1]}
	p.c.proto = protocol{srv: l.srv, peer: name, link: p.c}
	p.send(t, "HELLO "+name+"\n")
	l.readable(p.c)
	if got := p.receive(t); !bytes.HasPrefix(got, []byte("WELCOME ")) {
		t.Fatalf("%s: got %q, want WELCOME", name, got)
	}
	return p
}

func (p *loopPair) send(t *testing.T, s string) {
	t.Helper()
	if n, err := unix.Write(p.client, []byte(s)); err != nil || n != len(s) {
		t.Fatalf("client write: %d of %d bytes, %v", n, len(s), err)
	}
}

// receive returns what the client can read now.
func (p *loopPair) receive(t *testing.T) []byte {
	t.Helper()
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(p.client, buf)
		if errors.Is(err, unix.EAGAIN) {
			return got
		}
		if err != nil || n == 0 {
			t.Fatalf("client read: %d, %v", n, err)
		}
		got = append(got, buf[:n]...)
	}
}

// beats returns n BEAT lines from seq first, and the ACKs they want.
func beats(first, n int) (lines, acks string) {
	var b, a bytes.Buffer
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "BEAT %d\n", i)
		fmt.Fprintf(&a, "ACK %d\n", i)
	}
	return b.String(), a.String()
}

// TestLoopPendingRepliesSurviveOtherConnections: the loop builds every
// connection's replies in one shared buffer. When the kernel takes only a
// part of a connection's replies, the rest must move to a buffer of its
// own before another connection's replies are built, or they would be
// overwritten. Here the first client does not read while the loop answers
// it and then a second client; the first then gets exactly its own ACKs.
func TestLoopPendingRepliesSurviveOtherConnections(t *testing.T) {
	l := newHandLoop(t)
	slow, other := l.pair(t, "slow"), l.pair(t, "other")

	var want bytes.Buffer
	for seq := 0; ; seq += 100 {
		lines, acks := beats(seq, 100) // replies well inside the shared buffer
		slow.send(t, lines)
		l.readable(slow.c)
		want.WriteString(acks)
		if len(slow.c.out) > 0 {
			break // the kernel took only a part: the rest waits
		}
		if seq > 1e5 {
			t.Fatal("the loop's socket never filled up")
		}
	}
	lines, acks := beats(0, 100)
	other.send(t, lines)
	l.readable(other.c)
	if got := string(other.receive(t)); got != acks {
		t.Fatalf("other client got %q, want %q", got, acks)
	}

	var got []byte
	for len(slow.c.out) > 0 {
		got = append(got, slow.receive(t)...)
		l.flush(slow.c)
	}
	got = append(got, slow.receive(t)...)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("slow client got %d bytes of replies that differ from the %d it is owed", len(got), want.Len())
	}
}

// TestLoopReadsAgainAfterAFullBuffer: events are edge-triggered, so a read
// that fills the loop's buffer must be followed by another in the next
// round without a new event, until the socket is drained; otherwise the
// rest of a burst would wait, unread, for the client's next line.
func TestLoopReadsAgainAfterAFullBuffer(t *testing.T) {
	l := newHandLoop(t)
	p := l.pair(t, "burst")
	if err := unix.SetsockoptInt(p.c.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	lines, acks := beats(0, 2*loopReadSize/len("BEAT 12345\n")) // more than two buffers' worth
	sent := 0
	var got []byte
	rounds := 0
	for sent < len(lines) || len(l.again) > 0 {
		if sent < len(lines) && len(l.again) == 0 {
			// a new event: the client sent what its socket takes
			n, err := unix.Write(p.client, []byte(lines[sent:]))
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				t.Fatal(err)
			}
			sent += max(n, 0)
			l.readable(p.c)
		}
		for len(l.again) > 0 { // the rounds that follow, with no new event
			rounds++
			l.retry, l.again = l.again, l.retry[:0]
			for _, c := range l.retry {
				l.readable(c)
			}
		}
		got = append(got, p.receive(t)...)
	}
	if rounds == 0 {
		t.Fatal("no read filled the buffer: the test did not test reading again")
	}
	if string(got) != acks {
		t.Fatalf("got %d bytes of ACKs, want %d", len(got), len(acks))
	}
}
