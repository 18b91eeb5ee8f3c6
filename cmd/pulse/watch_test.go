package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
)

// TestWatchPrintsStall: a stall of the server, which has no session, is
// one readable line, and a session event is printed as before.
func TestWatchPrintsStall(t *testing.T) {
	var out strings.Builder
	p := &eventPrinter{w: &out}
	at := time.Date(2026, 11, 25, 12, 5, 20, 913e6, time.Local)
	stall := httpapi.Event{Kind: pulse.EventStall, Time: at, Reason: pulse.ReasonLateWakeup,
		Detail: "the server did not run for at least 20.3s", Stall: &httpapi.Stall{LengthMillis: 20300, Overdue: 3}}
	dead := httpapi.Event{Kind: pulse.EventDead, Time: at, Reason: pulse.ReasonTimeout, Detail: "no beat for 15s",
		Session: httpapi.Session{Name: "web-1", Peer: "127.0.0.1:40110"}}
	for _, ev := range []httpapi.Event{stall, dead} {
		if err := p.print(ev); err != nil {
			t.Fatal(err)
		}
	}
	want := "12:05:20.913  stall      (server)                                     late_wakeup: the server did not run for at least 20.3s\n" +
		"12:05:20.913  dead       web-1                 127.0.0.1:40110        timeout: no beat for 15s\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
