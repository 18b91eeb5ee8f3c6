package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/wire"
)

// fuzzServers are the servers FuzzHandshake talks to, one per transport,
// started once per fuzzing process and shared by its inputs.
var fuzzServers = sync.OnceValues(func() (map[Transport]string, error) {
	addrs := map[Transport]string{}
	for _, tr := range []Transport{TransportGoroutines, TransportEventLoop} {
		if tr == TransportEventLoop && !eventLoopSupported {
			continue
		}
		srv, err := New(Config{Transport: tr, Logger: quiet})
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		go srv.Serve(ln) // lives as long as the fuzzing process
		addrs[tr] = ln.Addr().String()
	}
	return addrs, nil
})

// handshakeFuzzed is set once FuzzHandshake has run in this process.
var handshakeFuzzed bool

// fuzzEnd ends every input: a line end for a line the input left open,
// then BYE, so that a connection the input left registered or waiting for
// HELLO closes too, and the server's every answer can be read to the end.
const fuzzEnd = "\nBYE fuzz\n"

// FuzzHandshake sends bytes as a client's first bytes on a connection, on
// each transport, and checks the server's answers: every line parses as a
// reply; at most one WELCOME, and first if at all; an ACK only after it;
// nothing after an ERR, and the connection closed right after it; no more
// lines than the input has, none long; and both transports answer alike.
func FuzzHandshake(f *testing.F) {
	// It tries every transport itself: TestMain's later passes, one per
	// transport, need not fuzz again.
	if handshakeFuzzed {
		f.Skip("FuzzHandshake tries every transport in TestMain's first pass")
	}
	handshakeFuzzed = true
	for _, s := range []string{
		"HELLO a\n", "HELLO a\nBEAT 1\nBEAT 2 300\n", "HELLO a {\"ack\":false}\nBEAT\n", "BEAT\n", "hello a\n",
		"HELLO a\nHELLO b\n", "HELLO\n", "HELLO a {\n", "HELLO a {\"interval_ms\":1}\nBEAT 1\n", "\n\n\r\n",
		"HELLO a\r\nBEAT x\n", "\x00\x00\n", "HELLO \xff\n", strings.Repeat("x", 5000), "HELLO a\nBYE\nBEAT\n",
		"HELLO a {\"token\":\"t\",\"meta\":{\"k\":\"v\"}}\nBEAT 18446744073709551615\n", "  HELLO \t a  \n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		addrs, err := fuzzServers()
		if err != nil {
			t.Fatal(err)
		}
		var first []string
		var firstTr Transport
		for tr, addr := range addrs {
			got := handshake(t, addr, in)
			checkAnswers(t, in, got)
			norm := normalizeIDs(got)
			if first == nil {
				first, firstTr = norm, tr
			} else if !slices.Equal(first, norm) {
				t.Fatalf("input %q: the %s transport answered %q, the %s transport %q", in, firstTr, first, tr, norm)
			}
		}
	})
}

// handshake sends in and the end, and returns the server's lines until it
// closes the connection.
func handshake(t *testing.T, addr string, in []byte) []string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// The server may close after an ERR before it has read it all.
		_, _ = nc.Write(append(bytes.Clone(in), fuzzEnd...))
	}()
	defer func() { <-wrote }()
	var lines []string
	r := bufio.NewReaderSize(nc, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("input %q: the server neither answered nor closed within 10s (so far %q)", in, lines)
			case line != "":
				t.Fatalf("input %q: the server's last line %q has no line end", in, line)
			case err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err):
				t.Fatalf("input %q: reading: %v", in, err)
			}
			return lines
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
		if len(lines) > 64<<10 {
			t.Fatalf("input %q: the server does not stop talking", in)
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// checkAnswers checks the invariants of the server's answers to in.
func checkAnswers(t *testing.T, in []byte, lines []string) {
	t.Helper()
	// The input's lines, its last one ended by fuzzEnd, and the BYE.
	if most := bytes.Count(in, []byte("\n")) + 2; len(lines) > most {
		t.Fatalf("input %q of %d lines: %d answers", in, most, len(lines))
	}
	welcomed := false
	for i, l := range lines {
		if len(l) > 1024 {
			t.Fatalf("input %q: answer %d is %d bytes long", in, i, len(l))
		}
		rep, err := wire.ParseReply([]byte(l))
		if err != nil {
			t.Fatalf("input %q: answer %q does not parse: %v", in, l, err)
		}
		switch rep.Kind {
		case wire.ReplyWelcome:
			if i != 0 {
				t.Fatalf("input %q: WELCOME as answer %d: %q", in, i, lines)
			}
			welcomed = true
		case wire.ReplyAck:
			if !welcomed {
				t.Fatalf("input %q: ACK before WELCOME: %q", in, lines)
			}
		case wire.ReplyErr:
			if i != len(lines)-1 {
				t.Fatalf("input %q: answers after ERR: %q", in, lines)
			}
		case wire.ReplyBye:
			t.Fatalf("input %q: the server said BYE: %q", in, lines)
		}
	}
}

// normalizeIDs replaces the session ID of a WELCOME, which differs from
// server to server.
func normalizeIDs(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "WELCOME "); ok {
			if _, opts, ok := strings.Cut(rest, " "); ok {
				l = "WELCOME <id> " + opts
			}
		}
		out[i] = l
	}
	return out
}
