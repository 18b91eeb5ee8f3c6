package fdbench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/pulsehq/pulse/detect"
)

// Setting is one detector to measure: a policy and the spec it was made
// from, which names it in the results.
type Setting struct {
	Spec   string
	Policy detect.Policy
}

// Options tune a run, not its figures.
type Options struct {
	// Workers is the number of goroutines that share the sessions; zero
	// means GOMAXPROCS. The figures do not depend on it.
	Workers int
	// Cost, if set, also measures each detector's CPU time per beat and
	// heap per session (which a loaded machine changes; nothing else in
	// the results does).
	Cost bool
}

// Result is what a run measured.
type Result struct {
	Scenario  ScenarioInfo     `json:"scenario"`
	Detectors []DetectorResult `json:"detectors"`
}

// ScenarioInfo describes what was run.
type ScenarioInfo struct {
	Name        string  `json:"name"`
	About       string  `json:"about"`
	Sessions    int     `json:"sessions"`
	Hours       float64 `json:"hours"`
	IntervalMS  float64 `json:"interval_ms"`
	Seed        uint64  `json:"seed"`
	ClientHours float64 `json:"client_hours"`
	Beats       int64   `json:"beats"`
	// Failures is the number of failure instants; each is tried with
	// every kind.
	Failures int `json:"failures"`
	// GraceMS is the stall grace, when the scenario has stalls;
	// NoStallGuard is set when it models a server without the guard.
	GraceMS      float64 `json:"stall_grace_ms,omitempty"`
	NoStallGuard bool    `json:"no_stall_guard,omitempty"`
}

// DetectorResult is the quality of service of one detector setting.
type DetectorResult struct {
	Spec string `json:"spec"`
	// Suspect and Dead are the wrong judgments of live clients.
	Suspect Mistakes `json:"suspect"`
	Dead    Mistakes `json:"dead"`
	// Detection is T_D: from the failure to its declaration (dead, or
	// the connection's end for a closed one), by kind of failure.
	Detection map[Kind]Percentiles `json:"detection_ms"`
	// SuspectDetection is from the failure to the suspicion that lasts.
	SuspectDetection map[Kind]Percentiles `json:"suspect_detection_ms"`
	// MassSuspicions counts the episodes in which more than 1 % of the
	// sessions became suspect within one second; PeakSuspectShare is the
	// largest share that did.
	MassSuspicions   int     `json:"mass_suspicions"`
	PeakSuspectShare float64 `json:"peak_suspect_share"`
	// NSPerBeat and StateBytes are the detector's own cost (with
	// Options.Cost): CPU time of Tracker.Beat, and heap per session.
	NSPerBeat  float64 `json:"ns_per_beat,omitempty"`
	StateBytes int     `json:"state_bytes,omitempty"`
}

// Mistakes are the wrong judgments of one level, suspect or dead.
type Mistakes struct {
	Count int64 `json:"count"`
	// PerClientHour is the mistake rate λ_M.
	PerClientHour float64 `json:"per_client_hour"`
	// MeanMS is the mean mistake duration T_M: until the client's next
	// beat arrives (for dead, on a new session).
	MeanMS float64 `json:"mean_ms"`
	// QueryAccuracy is P_A, the share of the live clients' time during
	// which they were not judged so.
	QueryAccuracy float64 `json:"query_accuracy"`
}

// source is where the sessions' streams come from: generated, or replayed.
type source interface {
	sessions() int
	fill(i int, s *stream)
}

// Run measures every setting on the scenario.
func Run(ctx context.Context, sc Scenario, settings []Setting, opt Options) (Result, error) {
	if err := sc.Validate(); err != nil {
		return Result{}, err
	}
	stalls, held := sc.stallWindows()
	res, err := run(ctx, &generated{sc: &sc, stalls: stalls}, held, settings, opt)
	if err != nil {
		return Result{}, err
	}
	res.Scenario.Name, res.Scenario.About, res.Scenario.Seed = sc.Name, sc.About, sc.Seed
	res.Scenario.Hours = sc.Duration.Hours()
	res.Scenario.IntervalMS = ms(sc.Interval)
	if sc.Stalls != nil {
		res.Scenario.GraceMS = ms(max(sc.Stalls.Grace, 0))
		res.Scenario.NoStallGuard = sc.Stalls.Grace < 0
	}
	return res, nil
}

// generated is a scenario's sessions.
type generated struct {
	sc     *Scenario
	stalls windows
}

func (g *generated) sessions() int         { return g.sc.Sessions }
func (g *generated) fill(i int, s *stream) { g.sc.generate(i, g.stalls, s) }

// run measures the settings on the streams of src, over workers that each
// keep their own tallies, merged at the end.
func run(ctx context.Context, src source, held windows, settings []Setting, opt Options) (Result, error) {
	if len(settings) == 0 {
		return Result{}, fmt.Errorf("fdbench: no detector to measure")
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n := src.sessions()
	workers = min(workers, n)
	type worker struct {
		tallies  []*tally
		failures int
	}
	ws := make([]worker, workers)
	var next sync.Mutex
	i := 0
	take := func() int {
		next.Lock()
		defer next.Unlock()
		if i >= n || ctx.Err() != nil {
			return -1
		}
		i++
		return i - 1
	}
	var wg sync.WaitGroup
	for w := range ws {
		ws[w].tallies = make([]*tally, len(settings))
		for k := range settings {
			ws[w].tallies[k] = newTally(held)
		}
		wg.Go(func() {
			var s stream
			var b evalBuf
			for j := take(); j >= 0; j = take() {
				src.fill(j, &s)
				ws[w].failures += len(s.fails)
				for k, st := range settings {
					ws[w].tallies[k].add(&s, st.Policy, &b)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("fdbench: %w", err)
	}
	var res Result
	for k, st := range settings {
		t := newTally(held)
		for _, w := range ws {
			t.merge(w.tallies[k])
		}
		if k == 0 {
			res.Scenario.Sessions = t.sessions
			res.Scenario.ClientHours = t.upTime.Hours()
			res.Scenario.Beats = t.beats
			for _, w := range ws {
				res.Scenario.Failures += w.failures
			}
		}
		res.Detectors = append(res.Detectors, t.result(st.Spec))
	}
	if opt.Cost {
		var s stream
		src.fill(0, &s)
		for k, st := range settings {
			res.Detectors[k].NSPerBeat = nsPerBeat(st.Policy, &s)
			res.Detectors[k].StateBytes = detect.StateBytes(st.Policy, time.Duration(s.interval))
		}
	}
	return res, nil
}

// merge adds o's counts to t's.
func (t *tally) merge(o *tally) {
	t.beats += o.beats
	t.upTime += o.upTime
	t.sessions += o.sessions
	t.suspects += o.suspects
	t.deaths += o.deaths
	t.suspectFor += o.suspectFor
	t.deadFor += o.deadFor
	t.suspectAt = append(t.suspectAt, o.suspectAt...)
	for k, v := range o.detectDead {
		t.detectDead[k] = append(t.detectDead[k], v...)
	}
	for k, v := range o.detectSuspect {
		t.detectSuspect[k] = append(t.detectSuspect[k], v...)
	}
}

// result turns a tally into figures.
func (t *tally) result(spec string) DetectorResult {
	r := DetectorResult{
		Spec:             spec,
		Suspect:          mistakes(t.suspects, t.suspectFor, t.upTime),
		Dead:             mistakes(t.deaths, t.deadFor, t.upTime),
		Detection:        map[Kind]Percentiles{},
		SuspectDetection: map[Kind]Percentiles{},
	}
	for k, v := range t.detectDead {
		r.Detection[k] = percentiles(v)
	}
	for k, v := range t.detectSuspect {
		r.SuspectDetection[k] = percentiles(v)
	}
	r.MassSuspicions, r.PeakSuspectShare = massSuspicions(t.suspectAt, t.sessions)
	return r
}

func mistakes(n int64, total, up time.Duration) Mistakes {
	m := Mistakes{Count: n, QueryAccuracy: 1}
	if up > 0 {
		m.PerClientHour = float64(n) / up.Hours()
		m.QueryAccuracy = 1 - float64(total)/float64(up)
	}
	if n > 0 {
		m.MeanMS = ms(total) / float64(n)
	}
	return m
}
