package fdbench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// Family is one trade-off curve of a detector: a spec with one knob that
// takes each of Values in turn, the other parameters at their defaults.
// Durations among the values are for the default 3 s interval: Sweep
// scales them to the timing's.
type Family struct {
	Detector string `json:"detector"`
	// Level is the judgment the curve is about: "dead" or "suspect".
	Level string `json:"level"`
	// Knob names the parameter that varies.
	Knob string `json:"knob"`
	// Template is the spec, with %s where each value goes.
	Template string   `json:"template"`
	Values   []string `json:"values"`
}

// Levels of judgment a curve can be about.
const (
	LevelDead    = "dead"
	LevelSuspect = "suspect"
)

// families are the built-in curves, for the default 3 s interval.
var families = []Family{
	{"fixed", LevelDead, "dead", "fixed:suspect=4.5s,dead=%s",
		[]string{"6s", "7s", "8s", "9s", "10s", "11s", "12s", "13s", "14s", "15s", "18s", "21s", "25s", "30s"}},
	{"fixed", LevelSuspect, "suspect", "fixed:suspect=%s",
		[]string{"3.3s", "3.6s", "4s", "4.5s", "5s", "6s", "7.5s", "9s", "12s"}},
	{"phi", LevelDead, "dead", "phi:dead=%s",
		[]string{"2", "3", "4", "6", "8", "10", "12", "16", "20", "30", "50", "100", "200", "300"}},
	{"phi", LevelSuspect, "suspect", "phi:suspect=%s",
		[]string{"0.5", "0.7", "0.8", "0.9", "1", "1.5", "2", "3", "5"}},
	{"chen", LevelDead, "dead", "chen:dead=%s",
		[]string{"2s", "3s", "4s", "5s", "6s", "7s", "8s", "9s", "10s", "12s", "15s", "20s", "27s"}},
	{"chen", LevelSuspect, "suspect", "chen:suspect=%s",
		[]string{"200ms", "400ms", "600ms", "800ms", "1s", "1.5s", "2s", "3s", "4.5s"}},
	{"quantile", LevelDead, "dead", "quantile:dead=%s",
		[]string{"1.5", "1.75", "2", "2.25", "2.5", "3", "3.5", "4", "5", "6", "8"}},
	{"quantile", LevelSuspect, "suspect", "quantile:suspect=%s",
		[]string{"1.05", "1.1", "1.15", "1.2", "1.3", "1.5", "1.75", "2", "2.5"}},
}

// Families returns the built-in curves of the named detectors (all when
// none is named).
func Families(detectors ...string) []Family {
	var out []Family
	for _, f := range families {
		if len(detectors) == 0 || slices.Contains(detectors, f.Detector) {
			out = append(out, f)
		}
	}
	return out
}

// SweepPoint is one setting on a curve.
type SweepPoint struct {
	Detector string `json:"detector"`
	Level    string `json:"level"`
	Knob     string `json:"knob"`
	Value    string `json:"value"`
	Spec     string `json:"spec"`
	// PerClientHour is the level's mistake rate.
	PerClientHour float64 `json:"mistakes_per_client_hour"`
	// Silent and Hang are the level's detection times (a replay tries
	// hangs only), and TD the one the curve is drawn with: silent
	// failures, or hangs when only those were tried.
	Silent Percentiles `json:"silent_ms"`
	Hang   Percentiles `json:"hang_ms"`
	TD     Percentiles `json:"td_ms"`
	TDKind Kind        `json:"td_kind"`
}

// SweepResult is a sweep's curves.
type SweepResult struct {
	Scenario ScenarioInfo `json:"scenario"`
	Points   []SweepPoint `json:"points"`
	// Skipped are settings that the timing does not allow (a dead
	// deadline past its timeout), with why.
	Skipped []string `json:"skipped,omitempty"`
}

// Sweep measures every setting of the families in one run, with policies
// for the timing (whose timeout caps every curve). run measures settings:
// Run on a scenario, or Replay on a recording.
func Sweep(timing pulse.Timing, fams []Family, run func([]Setting) (Result, error)) (SweepResult, error) {
	var settings []Setting
	var points []SweepPoint
	var skipped []string
	for _, f := range fams {
		for _, v := range f.Values {
			spec := scaleSpec(fmt.Sprintf(f.Template, v), timing.Interval)
			if d, err := time.ParseDuration(v); err == nil {
				v = scaleDuration(d, timing.Interval).String()
			}
			p, err := detect.New(spec, timing)
			if errors.Is(err, detect.ErrBadSpec) {
				skipped = append(skipped, strings.TrimPrefix(err.Error(), "bad detector: "))
				continue
			}
			if err != nil {
				return SweepResult{}, err
			}
			settings = append(settings, Setting{Spec: spec, Policy: p})
			points = append(points, SweepPoint{Detector: f.Detector, Level: f.Level, Knob: f.Knob, Value: v, Spec: spec})
		}
	}
	if len(settings) == 0 {
		return SweepResult{}, fmt.Errorf("fdbench: every setting of the sweep is beyond the timeout of %v: %s", timing.Timeout(), strings.Join(skipped, "; "))
	}
	res, err := run(settings)
	if err != nil {
		return SweepResult{}, err
	}
	for i, d := range res.Detectors {
		p := &points[i]
		if p.Level == LevelDead {
			p.PerClientHour, p.Silent, p.Hang = d.Dead.PerClientHour, d.Detection[Silent], d.Detection[Hang]
		} else {
			p.PerClientHour, p.Silent, p.Hang = d.Suspect.PerClientHour, d.SuspectDetection[Silent], d.SuspectDetection[Hang]
		}
		p.TD, p.TDKind = p.Silent, Silent
		if p.Silent.Count == 0 {
			p.TD, p.TDKind = p.Hang, Hang
		}
	}
	return SweepResult{Scenario: res.Scenario, Points: points, Skipped: skipped}, nil
}

// scaleSpec scales the durations of a spec written for the default 3 s
// interval to another interval; a spec it cannot parse is returned as it
// is, for detect.New to refuse.
func scaleSpec(spec string, interval time.Duration) string {
	s, err := detect.ParseSpec(spec)
	if err != nil || interval == DefaultInterval {
		return spec
	}
	for i, p := range s.Params {
		if d, err := time.ParseDuration(p.Value); err == nil {
			s.Params[i].Value = scaleDuration(d, interval).String()
		}
	}
	return s.String()
}

// scaleDuration scales d, given for the default interval, to interval,
// rounded to the millisecond (the registry's resolution) unless that
// leaves nothing.
func scaleDuration(d, interval time.Duration) time.Duration {
	scaled := time.Duration(float64(d) * float64(interval) / float64(DefaultInterval))
	if r := scaled.Round(time.Millisecond); r > 0 {
		return r
	}
	return scaled
}
