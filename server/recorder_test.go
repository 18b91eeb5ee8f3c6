package server

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// memRecorder keeps what an ArrivalRecorder is told, with the fake time.
type memRecorder struct {
	mu    sync.Mutex
	start time.Time
	lines []string
}

func (m *memRecorder) add(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines = append(m.lines, time.Since(m.start).String()+" "+fmt.Sprintf(format, args...))
}

func (m *memRecorder) Joined(id, name string, interval time.Duration) uint64 {
	m.add("join %s %v", name, interval)
	return 42
}
func (m *memRecorder) Beat(n, seq uint64, hasSeq bool) { m.add("beat %d %d %v", n, seq, hasSeq) }
func (m *memRecorder) Ended(id, kind, reason string)   { m.add("end %s %s", kind, reason) }

func (m *memRecorder) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.lines, "\n")
}

// A server with an adaptive detector (Chen's estimator) and an arrival
// recorder, on fake time: the recorder hears the registration, each beat
// with its sequence number, and the end; the detector declares the silent
// client dead exactly when its estimate says, while WELCOME still tells
// the client the timeout of the timing, which bounds it.
func TestDetectorAndRecorderEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &memRecorder{start: time.Now()}
		policy, err := detect.New("chen:suspect=500ms,dead=2s", pulse.DefaultTiming())
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{Logger: quiet, Policy: policy, ArrivalRecorder: rec})
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		go srv.Serve(ln)
		defer srv.Close()
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
		say(`HELLO alice {"ack":false}`)
		if w, _ := rd.ReadString('\n'); !strings.Contains(w, `"timeout_ms":15000`) {
			t.Fatalf("got %q, want WELCOME with the timing's 15 s timeout", w)
		}
		for i := 1; i <= 3; i++ {
			time.Sleep(3 * time.Second)
			if i == 2 {
				say("BEAT")
			} else {
				say(fmt.Sprintf("BEAT %d", i))
			}
		}
		last := time.Now()
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ERR timeout ") {
			t.Fatalf("after silence: %q, %v; want ERR timeout", line, err)
		}
		// Beats on time at 0, 3, 6, 9 s: the next is expected at 12 s, and
		// the margin is 2 s: dead at 14 s, 5 s after the last beat.
		if got := time.Since(last); got != 5*time.Second {
			t.Fatalf("dead %v after the last beat, want exactly 5s", got)
		}
		synctest.Wait()
		want := strings.Join([]string{
			"0s join alice 3s",
			"3s beat 42 1 true",
			"6s beat 42 0 false",
			"9s beat 42 3 true",
			"14s end dead timeout",
		}, "\n")
		if got := rec.String(); got != want {
			t.Fatalf("recorded:\n%s\nwant:\n%s", got, want)
		}
	})
}
