package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
)

var quiet = slog.New(slog.DiscardHandler)

// TestSeedScenarioEndToEnd replays the seed's case through the whole server
// on fake time: a client registers and beats every 3 s, then falls silent
// with its connection open. It is suspect exactly 4.5 s after its last beat,
// dead exactly 15 s after it, gets "ERR timeout" and its connection closes.
func TestSeedScenarioEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := New(Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		sub := srv.Subscribe(0)

		nc, err := ln.Dial()
		if err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(nc)
		say := func(line string) {
			t.Helper()
			if _, err := io.WriteString(nc, line+"\n"); err != nil {
				t.Fatalf("write %q: %v", line, err)
			}
		}
		hear := func() string {
			t.Helper()
			s, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			return strings.TrimSuffix(s, "\n")
		}

		start := time.Now()
		say("HELLO alice")
		if w := hear(); !strings.HasPrefix(w, "WELCOME ") || !strings.Contains(w, `"interval_ms":3000,"timeout_ms":15000,"suspect_ms":4500`) {
			t.Fatalf("got %q, want WELCOME with the seed's timing", w)
		}
		for i := 1; i <= 4; i++ {
			time.Sleep(3 * time.Second)
			say("BEAT " + string(rune('0'+i)))
			if a := hear(); a != "ACK "+string(rune('0'+i)) {
				t.Fatalf("got %q, want ACK %d", a, i)
			}
		}
		lastBeat := time.Now()

		var events []pulse.Event
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ev := range sub.C() {
				events = append(events, ev)
			}
		}()

		// Silence, socket open: the next thing the client hears is ERR timeout.
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ERR timeout ") {
			t.Fatalf("after silence got %q, %v; want ERR timeout", line, err)
		}
		if got := time.Since(lastBeat); got != 15*time.Second {
			t.Fatalf("ERR timeout came %v after the last beat, want exactly 15s", got)
		}
		if _, err := rd.ReadString('\n'); !errors.Is(err, io.EOF) {
			t.Fatalf("after ERR timeout: %v, want EOF (connection closed)", err)
		}

		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-done
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve returned %v, want ErrServerClosed", err)
		}
		var got []string
		for _, ev := range events {
			got = append(got, ev.Kind.String()+"@"+ev.Time.Sub(start).String())
		}
		if want := "joined@0s suspect@16.5s dead@27s"; strings.Join(got, " ") != want {
			t.Fatalf("events %v, want %s", got, want)
		}
	})
}

// TestHelloTimeout: a connection that says nothing is told so and closed
// after exactly the hello timeout.
func TestHelloTimeoutOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := New(Config{Logger: quiet})
		ln := newPipeListener()
		go srv.Serve(ln)
		defer srv.Close()
		nc, _ := ln.Dial()
		start := time.Now()
		line, err := bufio.NewReader(nc).ReadString('\n')
		if err != nil || line != "ERR hello_timeout no HELLO within 10s\n" {
			t.Fatalf("got %q, %v", line, err)
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Fatalf("hello timeout after %v, want 10s", d)
		}
	})
}

var _ net.Listener = (*pipeListener)(nil)
