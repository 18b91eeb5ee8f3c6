package pulse

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "eu.web_2:blue", strings.Repeat("x", 64), "A-Z.a_z:0-9"} {
		if !ValidName(ok) {
			t.Errorf("ValidName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 65), "a b", "a/b", "é", "a\n", "a\x00", "a,b", "*"} {
		if ValidName(bad) {
			t.Errorf("ValidName(%q) = true", bad)
		}
	}
}

func TestStateAndKindText(t *testing.T) {
	for _, s := range []State{StateAlive, StateSuspect, StateDead} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back State
		if err := back.UnmarshalText(b); err != nil || back != s || s.String() != string(b) {
			t.Fatalf("%v round-trips to %v, %v", s, back, err)
		}
	}
	if _, err := ParseState("zombie"); err == nil {
		t.Fatal("ParseState accepted zombie")
	}
	if _, err := State(9).MarshalText(); err == nil {
		t.Fatal("State(9) marshalled")
	}
	for k := EventJoined; k <= EventStall; k++ {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back EventKind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Fatalf("%v round-trips to %v, %v", k, back, err)
		}
	}
	ends := map[EventKind]bool{EventLeft: true, EventDead: true, EventReplaced: true, EventKicked: true}
	for k := EventJoined; k <= EventStall; k++ {
		if k.Ends() != ends[k] {
			t.Errorf("%v.Ends() = %v", k, k.Ends())
		}
	}
}

func TestTiming(t *testing.T) {
	d := DefaultTiming()
	if d.Timeout() != 15*time.Second || d.Suspect() != 4500*time.Millisecond || d.Validate() != nil {
		t.Fatalf("default timing: timeout %v, suspect %v, %v", d.Timeout(), d.Suspect(), d.Validate())
	}
	for _, ok := range []Timing{
		{Interval: time.Second, Misses: 2},
		{Interval: 24 * time.Hour, Misses: 1000},
		{Interval: time.Millisecond, Misses: 3, SuspectAfter: 1001 * time.Microsecond},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
	for _, bad := range []Timing{
		{Interval: 0, Misses: 5},
		{Interval: time.Microsecond, Misses: 5},
		{Interval: time.Second, Misses: 0},
		{Interval: time.Second, Misses: 1001},
		{Interval: 25 * time.Hour, Misses: 5},
		{Interval: 1000000 * time.Hour, Misses: 5}, // interval × misses would overflow
		{Interval: time.Second, Misses: 5, SuspectAfter: time.Second},
		{Interval: time.Second, Misses: 5, SuspectAfter: 500 * time.Millisecond},
		{Interval: time.Second, Misses: 5, SuspectAfter: -1},
		{Interval: time.Second, Misses: 5, SuspectAfter: 5 * time.Second},
		{Interval: time.Second, Misses: 1},
		{Interval: time.Second, Misses: 2, SuspectAfter: 2 * time.Second},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidTiming) {
			t.Errorf("%+v: Validate() = %v", bad, err)
		}
	}
}

// TestTimingForInterval: a session with its own interval keeps the misses
// and the suspect delay's ratio to the interval, to the nanosecond of
// what detect.Fixed computes (see detect's tests).
func TestTimingForInterval(t *testing.T) {
	d := DefaultTiming()
	for _, tt := range []struct {
		interval, suspect, timeout time.Duration
	}{
		{3 * time.Second, 4500 * time.Millisecond, 15 * time.Second},
		{time.Second, 1500 * time.Millisecond, 5 * time.Second},
		{30 * time.Second, 45 * time.Second, 150 * time.Second},
		{5 * time.Minute, 450 * time.Second, 25 * time.Minute},
	} {
		got := d.ForInterval(tt.interval)
		if got.Interval != tt.interval || got.Misses != 5 || got.Suspect() != tt.suspect || got.Timeout() != tt.timeout || got.Validate() != nil {
			t.Errorf("ForInterval(%v) = %+v: suspect %v, timeout %v, %v", tt.interval, got, got.Suspect(), got.Timeout(), got.Validate())
		}
	}
	own := Timing{Interval: 2 * time.Second, Misses: 3, SuspectAfter: 3 * time.Second}
	if got := own.ForInterval(20 * time.Second); got.Suspect() != 30*time.Second || got.Timeout() != time.Minute {
		t.Errorf("an explicit suspect delay scales too: %+v", got)
	}
	if own.ForInterval(2*time.Second) != own {
		t.Error("the timing's own interval changes nothing")
	}
}
