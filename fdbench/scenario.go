package fdbench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse/registry"
)

// Network is the path of one TCP connection from a client to the server.
type Network struct {
	// Delay is the least one-way delay.
	Delay time.Duration
	// Jitter is the mean of an exponentially distributed delay added to
	// every segment.
	Jitter time.Duration
	// SpikeProb is the chance that a segment is held up further, by an
	// exponentially distributed delay of mean SpikeMean (a congested
	// queue, a noisy neighbour).
	SpikeProb float64
	SpikeMean time.Duration
	// Loss is the chance that a transmission is lost; TCP sends the
	// segment again after its retransmission timeout.
	Loss float64
}

// HeavyTail is a kind of event that comes at random (a Poisson process)
// and lasts a Pareto-distributed time: most are short, a few are very
// long.
type HeavyTail struct {
	// Every is the mean time between two events.
	Every time.Duration
	// Min is the shortest event (the Pareto scale) and Alpha the Pareto
	// shape: the chance that an event lasts over t is (Min/t)^Alpha.
	Min   time.Duration
	Alpha float64
	// Max caps the length of an event.
	Max time.Duration
}

// Profile is a kind of session: its network, and what interrupts it.
type Profile struct {
	// Name says what the profile stands for, such as "lan".
	Name string
	// Net is the network; Noisy, if set, replaces it during the
	// scenario's noisy window.
	Net Network
	// Pauses stop the client from beating (a GC pause, a suspended
	// laptop): its ticker drops the ticks that fall in a pause but one,
	// which fires when the pause ends, as Go's time.Ticker does.
	Pauses *HeavyTail
	// Outages cut the network: every transmission in one is lost, so TCP
	// backs off and delivers what was queued after the outage, at the
	// next retransmission.
	Outages *HeavyTail
	// SendJitter is the mean of the client's scheduling delay, drawn
	// from an exponential distribution: how late after its tick a beat
	// leaves.
	SendJitter time.Duration
}

// Share is the part of a fleet that has one profile.
type Share struct {
	Profile Profile
	// Weight is relative to the other shares of the mix.
	Weight float64
}

// Stalls are stalls of the server itself (GC, CPU starvation, a VM
// pause), which hold up every session at once. What arrives during a stall
// is read at its end, and no session is judged until Grace after it: the
// server's stall guard (registry.Config.StallGrace) as this model assumes
// it. A negative Grace models a server without the guard: the judgments
// that fell due during the stall are made at its end, before what arrived
// in it is read.
type Stalls struct {
	// Every is the time between the starts of two stalls.
	Every time.Duration
	// Lengths are the stalls' lengths, in turn.
	Lengths []time.Duration
	// Grace is how long after a stall no judgment is made.
	Grace time.Duration
}

// Scenario is a fleet of simulated sessions and what happens to them.
type Scenario struct {
	// Name names the scenario, such as "fleet".
	Name string
	// About says in a line what it models.
	About string
	// Sessions is the number of sessions; each lives the whole run.
	Sessions int
	// Duration is the simulated time.
	Duration time.Duration
	// Interval is the beat interval of every session.
	Interval time.Duration
	// Seed makes the run: the same seed, the same figures.
	Seed uint64
	// Mix is the fleet: each session gets a profile, in proportion to
	// the weights (deterministically, by session number).
	Mix []Share
	// NoisyFrom and NoisyFor, if NoisyFor is set, are a window during
	// which every session's network is Noisy.
	NoisyFrom, NoisyFor time.Duration
	// Noisy is the network of the noisy window.
	Noisy Network
	// Stalls, if set, are the server's stalls.
	Stalls *Stalls
	// FailEvery is the mean time between two failure instants of one
	// session, at which each kind of failure is tried.
	FailEvery time.Duration
	// Warmup is the time before the first failure instant, so that
	// adaptive detectors are judged on what they learned.
	Warmup time.Duration
}

// sendJitter is the mean scheduling delay of the generated profiles'
// clients: a tenth of a millisecond.
const sendJitter = 100 * time.Microsecond

// The profiles of the generated scenarios; docs/detection.md says where
// their figures come from.
var (
	// LAN is a calm local network: 0.2 ms, a few tens of microseconds of
	// jitter, no loss.
	LAN = Profile{Name: "lan", Net: Network{Delay: 200 * time.Microsecond, Jitter: 50 * time.Microsecond}, SendJitter: sendJitter}
	// Cloud is a noisy cloud network: 1 ms with 3 ms of jitter, 1 % of
	// segments held up by 150 ms on average, 0.1 % lost.
	Cloud = Profile{Name: "cloud", Net: Network{Delay: time.Millisecond, Jitter: 3 * time.Millisecond,
		SpikeProb: 0.01, SpikeMean: 150 * time.Millisecond, Loss: 0.001}, SendJitter: sendJitter}
	// WAN is a long lossy path: 40 ms with 10 ms of jitter, 0.5 % of
	// segments held up by 300 ms on average, 2 % lost.
	WAN = Profile{Name: "wan", Net: Network{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond,
		SpikeProb: 0.005, SpikeMean: 300 * time.Millisecond, Loss: 0.02}, SendJitter: sendJitter}
	// Pausing is a cloud client that stops now and then: every 5 minutes
	// on average, for 200 ms or more, heavy-tailed (α 1.5), at most 2
	// minutes.
	Pausing = Profile{Name: "pauses", Net: Cloud.Net, SendJitter: sendJitter,
		Pauses: &HeavyTail{Every: 5 * time.Minute, Min: 200 * time.Millisecond, Alpha: 1.5, Max: 2 * time.Minute}}
	// Outaged is a cloud client whose network fails every 2 hours on
	// average, for a second or more, heavy-tailed (α 1.3), at most 10
	// minutes.
	Outaged = Profile{Name: "outages", Net: Cloud.Net, SendJitter: sendJitter,
		Outages: &HeavyTail{Every: 2 * time.Hour, Min: time.Second, Alpha: 1.3, Max: 10 * time.Minute}}
	// NoisyNet is the network of the noisy hour: 5 ms, 50 ms of jitter, 5
	// % of segments held up by 500 ms on average, 3 % lost.
	NoisyNet = Network{Delay: 5 * time.Millisecond, Jitter: 50 * time.Millisecond,
		SpikeProb: 0.05, SpikeMean: 500 * time.Millisecond, Loss: 0.03}
)

// Default sizes of a generated scenario.
const (
	DefaultSessions = 1000
	DefaultDuration = 24 * time.Hour
	DefaultInterval = 3 * time.Second
	DefaultSeed     = 1
)

// scenarioNames lists the generated scenarios in the order they are run.
var scenarioNames = []string{"lan", "cloud", "wan", "pauses", "outages", "fleet", "noisy-hour", "stalls"}

// ScenarioNames returns the names of the generated scenarios.
func ScenarioNames() []string { return slices.Clone(scenarioNames) }

// NewScenario returns the generated scenario of that name, with the
// default sizes: DefaultSessions sessions for DefaultDuration (the noisy
// hour runs 4 hours), beating every DefaultInterval.
func NewScenario(name string) (Scenario, error) {
	s := Scenario{
		Name: name, Sessions: DefaultSessions, Duration: DefaultDuration, Interval: DefaultInterval,
		Seed: DefaultSeed, FailEvery: time.Hour, Warmup: 10 * time.Minute,
	}
	one := func(p Profile) []Share { return []Share{{Profile: p, Weight: 1}} }
	switch name {
	case "lan":
		s.About, s.Mix = "calm LAN: 0.2 ms, no loss", one(LAN)
	case "cloud":
		s.About, s.Mix = "noisy cloud: jitter, 1% delay spikes, 0.1% loss", one(Cloud)
	case "wan":
		s.About, s.Mix = "WAN: 40 ms, 2% loss with TCP retransmission backoff", one(WAN)
	case "pauses":
		s.About, s.Mix = "clients that pause, heavy-tailed (Pareto α 1.5 from 200 ms), every 5 min", one(Pausing)
	case "outages":
		s.About, s.Mix = "network outages, heavy-tailed (Pareto α 1.3 from 1 s), every 2 h", one(Outaged)
	case "fleet":
		s.About = "fleet mix: 40% lan, 30% cloud, 15% wan, 10% pauses, 5% outages"
		s.Mix = []Share{{LAN, 40}, {Cloud, 30}, {WAN, 15}, {Pausing, 10}, {Outaged, 5}}
	case "noisy-hour":
		s.About = "calm LAN that turns noisy for an hour (1 h to 2 h of 4 h)"
		s.Mix, s.Duration = one(LAN), 4*time.Hour
		s.NoisyFrom, s.NoisyFor, s.Noisy = time.Hour, time.Hour, NoisyNet
	case "stalls":
		s.About = "calm LAN, server stalls of 0.5 to 10 s every 15 min"
		s.Mix = one(LAN)
		s.Stalls = &Stalls{Every: 15 * time.Minute, Grace: registry.DefaultStallGrace, Lengths: []time.Duration{
			500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second}}
	default:
		return Scenario{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownScenario, name, strings.Join(scenarioNames, ", "))
	}
	return s, nil
}

// Validate reports a scenario that cannot run.
func (s Scenario) Validate() error {
	switch {
	case s.Sessions < 1:
		return fmt.Errorf("%w: sessions must be at least 1, got %d", ErrInvalidScenario, s.Sessions)
	case s.Interval <= 0:
		return fmt.Errorf("%w: the interval must be positive, got %v", ErrInvalidScenario, s.Interval)
	case s.Duration < 2*s.Interval:
		return fmt.Errorf("%w: the duration (%v) must be at least two intervals", ErrInvalidScenario, s.Duration)
	case len(s.Mix) == 0:
		return fmt.Errorf("%w: the mix has no profile", ErrInvalidScenario)
	case s.FailEvery <= 0:
		return fmt.Errorf("%w: the failure spacing must be positive, got %v", ErrInvalidScenario, s.FailEvery)
	case s.Stalls != nil && (s.Stalls.Every <= 0 || len(s.Stalls.Lengths) == 0):
		return fmt.Errorf("%w: stalls need a positive spacing and at least one length", ErrInvalidScenario)
	}
	for _, sh := range s.Mix {
		if !(sh.Weight > 0) {
			return fmt.Errorf("%w: profile %s has weight %v, want positive", ErrInvalidScenario, sh.Profile.Name, sh.Weight)
		}
		for _, h := range []*HeavyTail{sh.Profile.Pauses, sh.Profile.Outages} {
			if h != nil && (h.Every <= 0 || h.Min <= 0 || !(h.Alpha > 0) || h.Max < h.Min) {
				return fmt.Errorf("%w: profile %s has a heavy tail %+v that cannot be drawn from", ErrInvalidScenario, sh.Profile.Name, *h)
			}
		}
	}
	return nil
}

// profileOf returns the profile of session i: the mix's weights laid out
// over the session numbers, so that every run and every detector sees the
// same fleet.
func (s Scenario) profileOf(i int) Profile {
	var total float64
	for _, sh := range s.Mix {
		total += sh.Weight
	}
	x := (float64(i) + 0.5) / float64(s.Sessions) * total
	for _, sh := range s.Mix {
		if x < sh.Weight {
			return sh.Profile
		}
		x -= sh.Weight
	}
	return s.Mix[len(s.Mix)-1].Profile
}
