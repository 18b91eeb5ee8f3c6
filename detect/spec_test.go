package detect

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
)

func TestSpecDefaults(t *testing.T) {
	timing := pulse.DefaultTiming()
	for _, c := range []struct {
		spec string
		want Policy
	}{
		{"fixed", NewFixed(timing)},
		{" Fixed ", NewFixed(timing)},
		{"phi", must(NewPhi(timing, DefaultPhiConfig()))},
		{"chen", must(NewChen(timing, DefaultChenConfig()))},
		{"quantile", must(NewQuantile(timing, DefaultQuantileConfig()))},
	} {
		p, err := New(c.spec, timing)
		if err != nil {
			t.Fatalf("New(%q): %v", c.spec, err)
		}
		if p.Name() != c.want.Name() {
			t.Errorf("New(%q) is %s, want %s", c.spec, p.Name(), c.want.Name())
		}
		// Same deadlines on the same beats as the policy made directly.
		a, b := p.Track(timing.Interval), c.want.Track(timing.Interval)
		for i := range 50 {
			at := time.Duration(i)*timing.Interval + time.Duration(i%7)*time.Millisecond
			if da, db := a.Beat(at), b.Beat(at); da != db {
				t.Fatalf("New(%q): beat %d: %+v, want %+v", c.spec, i, da, db)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSpecParams(t *testing.T) {
	timing := pulse.DefaultTiming()
	p, err := New("phi:suspect=5,dead=12,min-std=200ms,pause=3s,window=50", timing)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.(*Phi).Config(), (PhiConfig{Suspect: 5, Dead: 12, MinStd: 200 * time.Millisecond, Pause: 3 * time.Second, Window: 50}); got != want {
		t.Errorf("phi config %+v, want %+v", got, want)
	}
	p, err = New("chen:dead=6s", timing)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.(*Chen).Config(), (ChenConfig{Suspect: time.Second, Dead: 6 * time.Second, Window: 32}); got != want {
		t.Errorf("chen config %+v, want %+v", got, want)
	}
	p, err = New("quantile:q=0.999,suspect=1.2,dead=2.5,window=500,warmup=10", timing)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.(*Quantile).Config(), (QuantileConfig{Q: 0.999, Suspect: 1.2, Dead: 2.5, Window: 500, Warmup: 10}); got != want {
		t.Errorf("quantile config %+v, want %+v", got, want)
	}
	p, err = New("fixed:suspect=4s,dead=11s", timing)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Track(3*time.Second).Beat(time.Minute), (Deadlines{Suspect: time.Minute + 4*time.Second, Dead: time.Minute + 11*time.Second}); got != want {
		t.Errorf("fixed:suspect=4s,dead=11s: Beat = %+v, want %+v", got, want)
	}
	s, err := ParseSpec("phi: suspect = 5 , dead=12")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "phi:suspect=5,dead=12" {
		t.Errorf("String() = %q", got)
	}
}

// Every mistake in a spec is refused with an error that says what is
// wanted.
func TestSpecErrors(t *testing.T) {
	timing := pulse.DefaultTiming()
	for _, c := range []struct{ spec, want string }{
		{"", "want one of fixed, phi, chen, quantile"},
		{"swim", "want one of fixed, phi, chen, quantile"},
		{"phi:", "want key=value"},
		{"phi:suspect", "want key=value"},
		{"phi:suspect=5,suspect=6", "suspect is given twice"},
		{"phi:threshold=8", `phi takes no parameter "threshold"; it takes suspect=PHI`},
		{"fixed:misses=3", `fixed takes no parameter "misses"`},
		{"phi:suspect=high", "suspect=high: want a number"},
		{"phi:pause=3", "pause=3: want a duration such as 1s or 250ms"},
		{"phi:window=1.5", "window=1.5: want a whole number"},
		{"phi:suspect=8,dead=5", "dead threshold must be above the suspect one"},
		{"phi:suspect=0", "suspect threshold must be positive"},
		{"phi:min-std=0s", "min-std must be positive"},
		{"phi:window=1", "window must be from 2"},
		{"chen:suspect=2s,dead=1s", "dead margin must be longer"},
		{"chen:window=0", "window must be from 1 to 224"},
		{"quantile:q=0.2", "q must be from 0.5 to 1"},
		{"quantile:suspect=0.5", "suspect multiplier must be at least 1"},
		{"quantile:warmup=2000", "warmup must be from 1"},
		{"fixed:dead=20s", "must not be longer than the timeout clients are told, interval × misses (15s)"},
		{"fixed:suspect=2s", "must be longer than the interval"},
	} {
		_, err := New(c.spec, timing)
		if err == nil {
			t.Errorf("New(%q) succeeded, want an error with %q", c.spec, c.want)
			continue
		}
		if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q) = %v, want ErrBadSpec with %q", c.spec, err, c.want)
		}
	}
	if _, err := New("phi", pulse.Timing{Interval: time.Second, Misses: 1}); !errors.Is(err, ErrBadSpec) || !errors.Is(err, pulse.ErrInvalidTiming) {
		t.Errorf("bad timing: %v, want ErrBadSpec and ErrInvalidTiming", err)
	}
}
