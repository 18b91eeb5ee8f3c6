package fdbench

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// regular is a scenario of perfectly regular beats: no network delay, no
// jitter, nothing lost.
func regular(sessions int, d time.Duration) Scenario {
	return Scenario{
		Name: "regular", Sessions: sessions, Duration: d, Interval: 3 * time.Second, Seed: 7,
		Mix: []Share{{Profile: Profile{Name: "regular"}, Weight: 1}}, FailEvery: 10 * time.Minute, Warmup: time.Minute,
	}
}

// The answer known exactly: a fixed timeout on perfectly regular beats
// makes no mistake, and a silent or hung session is declared dead exactly
// the timeout after its last beat, that is the timeout less the phase of
// the failure (the time since that beat); suspect likewise; a closed
// connection, over a network without delay, at once.
func TestFixedOnRegularBeatsExact(t *testing.T) {
	sc := regular(20, 6*time.Hour)
	timing := pulse.DefaultTiming() // suspect 4.5 s, dead 15 s
	p := detect.NewFixed(timing)
	tl := newTally(nil)
	var s stream
	var b evalBuf
	checked := 0
	for i := range sc.Sessions {
		sc.generate(i, nil, &s)
		before := len(tl.detectDead[Silent])
		tl.add(&s, p, &b)
		for j, c := range s.fails {
			last := s.send[lastBefore(s.send, c)]
			phase := time.Duration(c - last)
			for _, k := range []Kind{Silent, Hang} {
				if got, want := tl.detectDead[k][before+j], timing.Timeout()-phase; got != want {
					t.Fatalf("session %d, failure at %v, %s: T_D %v, want %v (timeout less phase %v)", i, time.Duration(c), k, got, want, phase)
				}
				if got, want := tl.detectSuspect[k][before+j], timing.Suspect()-phase; got != want {
					t.Fatalf("session %d, failure at %v, %s: suspect T_D %v, want %v", i, time.Duration(c), k, got, want)
				}
			}
			if got := tl.detectDead[Closed][before+j]; got != 0 {
				t.Fatalf("session %d: closed connection declared after %v, want at once", i, got)
			}
			checked++
		}
	}
	if tl.suspects != 0 || tl.deaths != 0 {
		t.Fatalf("%d suspect and %d dead mistakes on regular beats, want none", tl.suspects, tl.deaths)
	}
	if checked < 100 {
		t.Fatalf("only %d failures checked", checked)
	}
}

// The stall guard as modelled: on a calm LAN, stalls of up to 10 s cost
// no judgment when what arrived during them is read first and a grace
// follows; without the guard, the sessions whose deadlines fell in a long
// stall are declared dead at its end, and their next beat shows it wrong.
func TestStallGuard(t *testing.T) {
	sc, err := NewScenario("stalls")
	if err != nil {
		t.Fatal(err)
	}
	sc.Sessions, sc.Duration = 50, 2*time.Hour // 7 stalls: 0.5 s to 10 s
	p, err := detect.New("fixed", pulse.DefaultTiming())
	if err != nil {
		t.Fatal(err)
	}
	settings := []Setting{{Spec: "fixed", Policy: p}}
	res, err := Run(context.Background(), sc, settings, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Detectors[0]; d.Suspect.Count != 0 || d.Dead.Count != 0 || d.MassSuspicions != 0 {
		t.Fatalf("with the guard: %+v", d)
	}
	sc.Stalls.Grace = -1
	res, err = Run(context.Background(), sc, settings, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The 10 s stall at 75 min: every session's suspect deadline (4.5 s
	// after a beat at most 3 s old) falls in it; none of its dead ones.
	d := res.Detectors[0]
	if d.Suspect.Count < int64(sc.Sessions) || d.Dead.Count != 0 || d.MassSuspicions < 1 || d.PeakSuspectShare != 1 || !res.Scenario.NoStallGuard {
		t.Fatalf("without the guard: %+v, want every session suspect at once, none dead", d)
	}
}

// The TCP model: a lost segment is sent again after 200 ms, then 400 ms
// more; what the client sends meanwhile goes out with it; in-order
// delivery holds a later segment behind an earlier one.
func TestTCPRetransmission(t *testing.T) {
	ms := int64(time.Millisecond)
	sc := Scenario{}
	c := &conn{sc: &sc, net: Network{Delay: 10 * time.Millisecond}, outages: windows{{1000 * ms, 1500 * ms}}}
	if a, tx := c.send(0, nil); a != 10*ms || tx != 0 {
		t.Fatalf("no loss: arrives %v, sent %v", a, tx)
	}
	// Sent at 1.1 s in the outage: lost at 1.1 and 1.3 s, through at 1.7 s.
	if a, tx := c.send(1100*ms, nil); a != 1710*ms || tx != 1700*ms {
		t.Fatalf("in an outage: arrives %v ms, last sent %v ms; want 1710 and 1700", a/ms, tx/ms)
	}
	// Sent at 1.6 s, while the first waits for its retransmission: with it.
	if a, tx := c.send(1600*ms, nil); a != 1710*ms || tx != 1700*ms {
		t.Fatalf("queued behind: arrives %v ms, sent %v ms; want 1710 and 1700", a/ms, tx/ms)
	}
	if a, _ := c.send(2000*ms, nil); a != 2010*ms {
		t.Fatalf("after the outage: arrives %v ms, want 2010", a/ms)
	}
}

// The client's ticker in a pause: the ticks in it are dropped but one,
// which fires when the pause ends; the schedule then goes on.
func TestPauseDropsTicksButOne(t *testing.T) {
	sc := regular(1, time.Hour)
	sc.Mix[0].Profile.Pauses = &HeavyTail{Every: 20 * time.Minute, Min: 7 * time.Second, Alpha: 50, Max: 7 * time.Second}
	var s stream
	sc.generate(0, nil, &s)
	iv := int64(sc.Interval)
	phase := s.send[0]
	pauses := 0
	for i := 1; i < len(s.send); i++ {
		gap := s.send[i] - s.send[i-1]
		if gap == iv {
			continue
		}
		pauses++
		// The beat at the pause's end is off the schedule; the next is
		// back on it.
		if i+1 >= len(s.send) || (s.send[i+1]-phase)%iv != 0 || gap <= 2*iv || gap > 4*iv || s.send[i+1]-s.send[i] >= iv {
			t.Fatalf("beats at %v, %v, %v around a 7 s pause", time.Duration(s.send[i-1]), time.Duration(s.send[i]), time.Duration(s.send[i+1]))
		}
		i++ // the short gap back onto the schedule
	}
	if pauses == 0 {
		t.Fatal("no pause in an hour")
	}
}

func TestPercentilesNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1000; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p != (Percentiles{Count: 1000, P50: 500, P99: 990, P999: 999, Max: 1000}) {
		t.Fatalf("percentiles %+v", p)
	}
}

func TestMassSuspicions(t *testing.T) {
	s := int64(time.Second)
	at := []int64{
		0, 100, 200, // 3 within a second: over 1% of 200 sessions
		10 * s,                                                                                 // alone
		20 * s, 20*s + 1, 20*s + 2, 20*s + 900_000_000, 21*s + 500_000_000, 21*s + 600_000_000, // one episode
	}
	episodes, peak := massSuspicions(at, 200)
	if episodes != 2 || peak != 4.0/200 {
		t.Fatalf("%d episodes, peak %v; want 2 and 0.02", episodes, peak)
	}
}

// A sweep at another interval scales the families' durations with it, and
// skips, saying why, the settings past the timeout.
func TestSweepScalesToInterval(t *testing.T) {
	timing := pulse.Timing{Interval: 1500 * time.Millisecond, Misses: 4} // timeout 6 s
	sc := regular(5, time.Hour)
	sc.Interval = timing.Interval
	res, err := Sweep(timing, Families("chen"), func(s []Setting) (Result, error) {
		return Run(context.Background(), sc, s, Options{})
	})
	if err != nil {
		t.Fatal(err)
	}
	var specs []string
	for _, p := range res.Points {
		specs = append(specs, p.Spec)
		if p.TDKind != Silent || p.TD != p.Silent || p.PerClientHour != 0 {
			t.Errorf("%s: %+v; want silent detection times and no mistake on regular beats", p.Spec, p)
		}
	}
	for _, want := range []string{"chen:dead=1.5s", "chen:dead=4.5s", "chen:suspect=100ms", "chen:suspect=2.25s"} {
		if !slices.Contains(specs, want) {
			t.Errorf("sweep lacks %s: %v", want, specs)
		}
	}
	// The knob scales, not the other parameters' defaults: a dead margin
	// of 2 s scaled is 1 s, no longer than chen's default suspect margin.
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "dead margin must be longer than the suspect one (1s), got 1s") {
		t.Errorf("skipped %v, want chen:dead=1s", res.Skipped)
	}
	late := []Family{{Detector: "fixed", Level: LevelDead, Knob: "dead", Template: "fixed:dead=%s", Values: []string{"20s", "30s"}}}
	if _, err := Sweep(timing, late, nil); err == nil || !strings.Contains(err.Error(), "beyond the timeout of 6s") {
		t.Errorf("a sweep with every setting past the timeout: %v", err)
	}
}
