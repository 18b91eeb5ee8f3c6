package detect

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
)

// ErrBadSpec is wrapped by the errors of ParseSpec, Spec.Policy and the
// policies' constructors.
var ErrBadSpec = errors.New("bad detector")

// Names lists the policies that New and ParseSpec know, default first.
var Names = []string{"fixed", "phi", "chen", "quantile"}

// Spec names a policy and its parameters, as written on a command line:
//
//	fixed
//	fixed:suspect=4s,dead=11s
//	phi:suspect=1,dead=16,min-std=1s,pause=0s,window=200
//	chen:suspect=1s,dead=8s,window=32
//	quantile:q=0.99,suspect=1.18,dead=3.2,window=1000,warmup=20
//
// Parameters left out take their defaults. Durations are given for the
// server's interval and scale with a session's granted interval.
type Spec struct {
	// Name is one of Names.
	Name string
	// Params are the parameters in the order given, as key=value.
	Params []Param
}

// Param is one key=value parameter of a Spec.
type Param struct{ Key, Value string }

// paramHelp says, for each policy, what parameters it takes.
var paramHelp = map[string]string{
	"fixed":    "suspect=DURATION and dead=DURATION (default --suspect-after and --interval × --misses)",
	"phi":      "suspect=PHI, dead=PHI, min-std=DURATION, pause=DURATION and window=N",
	"chen":     "suspect=DURATION, dead=DURATION (margins after the expected beat) and window=N",
	"quantile": "q=QUANTILE, suspect=MULTIPLIER, dead=MULTIPLIER, window=N and warmup=N",
}

// ParseSpec parses "name" or "name:key=value,key=value".
func ParseSpec(s string) (Spec, error) {
	name, rest, hasParams := strings.Cut(strings.TrimSpace(s), ":")
	name = strings.ToLower(strings.TrimSpace(name))
	if !slices.Contains(Names, name) {
		return Spec{}, fmt.Errorf("%w %q: want one of %s, optionally followed by :key=value,…", ErrBadSpec, s, strings.Join(Names, ", "))
	}
	spec := Spec{Name: name}
	if !hasParams {
		return spec, nil
	}
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return Spec{}, fmt.Errorf("%w %q: want key=value after %s:, got %q; %s takes %s", ErrBadSpec, s, name, kv, name, paramHelp[name])
		}
		if seen[k] {
			return Spec{}, fmt.Errorf("%w %q: %s is given twice", ErrBadSpec, s, k)
		}
		seen[k] = true
		spec.Params = append(spec.Params, Param{k, v})
	}
	return spec, nil
}

// String returns the spec as ParseSpec reads it.
func (s Spec) String() string {
	if len(s.Params) == 0 {
		return s.Name
	}
	parts := make([]string, len(s.Params))
	for i, p := range s.Params {
		parts[i] = p.Key + "=" + p.Value
	}
	return s.Name + ":" + strings.Join(parts, ",")
}

// New parses spec and returns its policy for the timing: a shorthand for
// ParseSpec and Spec.Policy.
func New(spec string, t pulse.Timing) (Policy, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return s.Policy(t)
}

// Policy returns the policy the spec names, for the timing, which must be
// valid. No policy declares a session dead later than the timing's timeout
// (interval × misses) after its last beat, which is the timeout WELCOME
// tells clients.
func (s Spec) Policy(t pulse.Timing) (Policy, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSpec, s, err)
	}
	r := paramReader{spec: s}
	var p Policy
	var err error
	switch s.Name {
	case "fixed":
		suspect := r.duration("suspect", t.Suspect())
		dead := r.duration("dead", t.Timeout())
		if err = r.done(); err == nil {
			p, err = newFixedDelays(t, suspect, dead)
		}
	case "phi":
		c := DefaultPhiConfig()
		c.Suspect = r.float("suspect", c.Suspect)
		c.Dead = r.float("dead", c.Dead)
		c.MinStd = r.duration("min-std", c.MinStd)
		c.Pause = r.duration("pause", c.Pause)
		c.Window = r.int("window", c.Window)
		if err = r.done(); err == nil {
			p, err = NewPhi(t, c)
		}
	case "chen":
		c := DefaultChenConfig()
		c.Suspect = r.duration("suspect", c.Suspect)
		c.Dead = r.duration("dead", c.Dead)
		c.Window = r.int("window", c.Window)
		if err = r.done(); err == nil {
			p, err = NewChen(t, c)
		}
	case "quantile":
		c := DefaultQuantileConfig()
		c.Q = r.float("q", c.Q)
		c.Suspect = r.float("suspect", c.Suspect)
		c.Dead = r.float("dead", c.Dead)
		c.Window = r.int("window", c.Window)
		c.Warmup = r.int("warmup", c.Warmup)
		if err = r.done(); err == nil {
			p, err = NewQuantile(t, c)
		}
	default:
		err = fmt.Errorf("%w %q: want one of %s", ErrBadSpec, s.Name, strings.Join(Names, ", "))
	}
	if err != nil {
		if !errors.Is(err, ErrBadSpec) {
			err = fmt.Errorf("%w %q: %w", ErrBadSpec, s, err)
		}
		return nil, err
	}
	return p, nil
}

// newFixedDelays returns the fixed policy with explicit delays, which must
// fit the timing: longer than the interval, and dead no later than its
// timeout.
func newFixedDelays(t pulse.Timing, suspect, dead time.Duration) (*Fixed, error) {
	switch {
	case suspect <= t.Interval:
		return nil, fmt.Errorf("%w: fixed suspect delay (%v) must be longer than the interval (%v), or every healthy client is suspect between its beats", ErrBadSpec, suspect, t.Interval)
	case dead <= suspect:
		return nil, fmt.Errorf("%w: fixed dead delay (%v) must be longer than the suspect delay (%v)", ErrBadSpec, dead, suspect)
	case dead > t.Timeout():
		return nil, fmt.Errorf("%w: fixed dead delay (%v) must not be longer than the timeout clients are told, interval × misses (%v); raise the misses instead", ErrBadSpec, dead, t.Timeout())
	}
	return &Fixed{timing: t, suspect: suspect, dead: dead}, nil
}

// paramReader takes a spec's parameters one by one and remembers the first
// error.
type paramReader struct {
	spec Spec
	used map[string]bool
	err  error
}

func (r *paramReader) lookup(key string) (string, bool) {
	if r.used == nil {
		r.used = map[string]bool{}
	}
	r.used[key] = true
	for _, p := range r.spec.Params {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

func (r *paramReader) fail(key, value, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w %q: %s=%s: want %s", ErrBadSpec, r.spec, key, value, want)
	}
}

func (r *paramReader) duration(key string, def time.Duration) time.Duration {
	v, ok := r.lookup(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(key, v, "a duration such as 1s or 250ms")
		return def
	}
	return d
}

func (r *paramReader) float(key string, def float64) float64 {
	v, ok := r.lookup(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.fail(key, v, "a number such as 3 or 0.99")
		return def
	}
	return f
}

func (r *paramReader) int(key string, def int) int {
	v, ok := r.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(key, v, "a whole number")
		return def
	}
	return n
}

// done reports the first bad value, or a parameter the policy does not
// take.
func (r *paramReader) done() error {
	if r.err != nil {
		return r.err
	}
	for _, p := range r.spec.Params {
		if !r.used[p.Key] {
			return fmt.Errorf("%w %q: %s takes no parameter %q; it takes %s", ErrBadSpec, r.spec, r.spec.Name, p.Key, paramHelp[r.spec.Name])
		}
	}
	return nil
}
