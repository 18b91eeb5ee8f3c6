package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
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

// TestMixedFleetOnFakeTime: servers on 1 s and phones on 30 s, as the
// issue's fleet, on one server whose own interval is 3 s. Each asks for
// its interval in HELLO and beats on it for 5 minutes without a suspect;
// then all fall silent at once, connections open, and each is judged on
// its own timing, to the nanosecond: the servers suspect 1.5 s and dead
// 5 s after their last beat, the phones 45 s and 150 s after it, their
// deadlines many turns of the registry's 16 s wheel away.
func TestMixedFleetOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := New(Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		go srv.Serve(ln)
		defer srv.Close()
		sub := srv.Subscribe(0)
		start := time.Now()

		fleet := map[string]time.Duration{"rack-1": time.Second, "rack-2": time.Second, "phone-1": 30 * time.Second, "phone-2": 30 * time.Second}
		var wg sync.WaitGroup
		for name, interval := range fleet {
			nc, err := ln.Dial()
			if err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(nc)
			fmt.Fprintf(nc, "HELLO %s {\"interval_ms\":%d,\"ack\":false}\n", name, interval.Milliseconds())
			if w, err := rd.ReadString('\n'); err != nil || !strings.Contains(w, fmt.Sprintf(`"interval_ms":%d,`, interval.Milliseconds())) {
				t.Fatalf("%s: %q, %v", name, w, err)
			}
			wg.Go(func() {
				for range 5 * time.Minute / interval {
					time.Sleep(interval)
					fmt.Fprintf(nc, "BEAT\n")
				}
				io.Copy(io.Discard, rd) // silent now; hears ERR timeout, then EOF
			})
		}
		wg.Wait()
		srv.Close()

		at := map[string]string{}
		for ev := range sub.C() {
			if ev.Kind == pulse.EventSuspect || ev.Kind == pulse.EventDead {
				at[ev.Session.Name] += fmt.Sprintf("%s@%v ", ev.Kind, ev.Time.Sub(start)-5*time.Minute)
			}
		}
		want := map[string]string{
			"rack-1": "suspect@1.5s dead@5s ", "rack-2": "suspect@1.5s dead@5s ",
			"phone-1": "suspect@45s dead@2m30s ", "phone-2": "suspect@45s dead@2m30s ",
		}
		if !maps.Equal(at, want) {
			t.Fatalf("judgments after the last beat: %v, want %v", at, want)
		}
	})
}
