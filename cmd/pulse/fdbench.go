package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
	"github.com/pulsehq/pulse/fdbench"
	"github.com/pulsehq/pulse/registry"
)

// fdbenchCommand measures failure detectors on simulated or recorded
// heartbeat traffic.
type fdbenchCommand struct {
	stdout, stderr io.Writer
	env            func(string) (string, bool)
}

const fdbenchExamples = `  pulse fdbench                                      # the fleet mix: fixed, phi, chen, quantile
  pulse fdbench --scenario all --sessions 200 --duration 6h
  pulse fdbench --detector fixed --detector 'fixed:suspect=4s,dead=11s' --detector 'phi:dead=16,pause=2s'
  pulse fdbench --sweep --misses 10 --json > sweep.json   # trade-off curves, up to a 30 s timeout
  pulse fdbench --replay arrivals.bin --detector fixed --detector quantile
`

const fdbenchAbout = `fdbench runs the server's own detectors (the code --detector chooses in
pulse serve) over heartbeat arrivals in simulated time, with fixed seeds:
the same figures on every machine. A scenario is a fleet of sessions beating
every --interval over a model of TCP (in-order delivery; a lost segment is
sent again after 200 ms, doubling), with the scenario's jitter, loss, client
pauses, network outages and server stalls. --replay uses the arrivals that
pulse serve --record-arrivals recorded instead.

Figures, as Chen, Toueg and Aguilera define them:
  SUSPECT/h, DEAD/h    wrong judgments of live clients, per client-hour
  T_M                  mean mistake duration: until the client's next beat
  P_A                  share of live clients' time not under suspicion
  CLOSED, SILENT, HANG detection time T_D p50/p99/p99.9 of failures tried at
                       random instants (every --fail-every per session): the
                       peer's kernel closes the connection (FIN/RST); the host
                       vanishes (nothing more arrives); the client hangs (what
                       it sent still arrives)
  SUSP p99             T_D p99 of the lasting suspicion (silent)
  MASS                 episodes with over 1% of sessions suspected within 1 s,
                       and (in brackets) the most suspected within 1 s
  CPU/BEAT, STATE      a detector's own cost: ns per beat, heap per session

Scenarios: ` + "lan, cloud, wan, pauses, outages, fleet, noisy-hour, stalls (docs/detection.md)." + `
--sweep varies one knob of each detector (as --detector names them, all by
default) and prints mistakes against T_D p99, for dead and for suspect. The
timeout (--interval × --misses) caps every detector, as it does in serve.`

// Run parses the flags, measures and prints.
func (c *fdbenchCommand) Run(ctx context.Context, args []string) error {
	fs := newFlagSet("fdbench", "Measure failure detectors on simulated or recorded heartbeats.",
		fdbenchAbout, fdbenchExamples, c.stdout, c.env)
	var specs detectorList
	fs.Var(&specs, "detector", "detector `spec` to measure, as pulse serve --detector takes it; repeat the flag, or separate with ;")
	var (
		scenarios    = fs.String("scenario", "fleet", "scenarios to run: `names` separated by commas, or all")
		sessions     = fs.int("sessions", fdbench.DefaultSessions, "sessions in each scenario")
		duration     = fs.duration("duration", 0, "simulated time of each scenario")
		seed         = fs.int("seed", fdbench.DefaultSeed, "seed of the random draws: the same seed, the same figures")
		interval     = fs.duration("interval", pulse.DefaultInterval, "how often clients beat")
		misses       = fs.int("misses", pulse.DefaultMisses, "missed intervals after which a silent session is dead: every detector's longest timeout")
		suspectAfter = fs.duration("suspect-after", 0, "silence after which a session is suspect, for the fixed detector")
		failEvery    = fs.duration("fail-every", time.Hour, "mean time between the failure instants tried in a session")
		warmup       = fs.duration("warmup", 10*time.Minute, "time before a session's first failure instant, for adaptive detectors to learn")
		grace        = fs.duration("stall-grace", registry.DefaultStallGrace, "after a server stall, time before anyone is judged (the stall guard; pulse serve --stall-grace)")
		noGuard      = fs.bool("no-stall-guard", false, "model a server without a stall guard: judgments due in a stall are made at its end, before what arrived in it is read")
		replay       = fs.String("replay", "", "measure on the arrivals recorded in this `file` (pulse serve --record-arrivals) instead of scenarios")
		sweep        = fs.bool("sweep", false, "print each detector's trade-off curves: mistakes against T_D p99, as one knob varies")
		jsonOut      = fs.bool("json", false, "print the results as JSON")
		noCost       = fs.bool("no-cost", false, "skip measuring each detector's CPU time per beat and heap per session")
		workers      = fs.int("workers", 0, "goroutines that share the sessions; 0 for one a CPU (the figures do not depend on it)")
	)
	fs.defaults["detector"] = "fixed, phi, chen and quantile with their defaults"
	fs.defaults["duration"] = "24h; 4h for noisy-hour"
	fs.defaults["suspect-after"] = "1.5 × interval"
	if err := fs.parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	timing := pulse.Timing{Interval: *interval, Misses: *misses, SuspectAfter: *suspectAfter}
	if err := timing.Validate(); err != nil {
		return usageErrorf("--interval %v, --misses %d, --suspect-after %v: %v", *interval, *misses, timing.Suspect(), err)
	}
	switch {
	case *sessions < 1:
		return usageErrorf("--sessions must be at least 1, got %d", *sessions)
	case *duration < 0:
		return usageErrorf("--duration must be positive, got %v", *duration)
	case *seed < 0:
		return usageErrorf("--seed must not be negative, got %d", *seed)
	case *failEvery <= 0:
		return usageErrorf("--fail-every must be positive, got %v", *failEvery)
	case *warmup < 0 || *grace < 0:
		return usageErrorf("--warmup and --stall-grace must not be negative")
	case *workers < 0:
		return usageErrorf("--workers must not be negative, got %d", *workers)
	case *replay != "" && (given["scenario"] || given["sessions"] || given["duration"]):
		return usageErrorf("--replay measures a recording: --scenario, --sessions and --duration do not apply")
	}
	var names []string
	if *replay == "" {
		var err error
		if names, err = scenarioList(*scenarios); err != nil {
			return err
		}
	}
	if len(specs) == 0 {
		for _, n := range detect.Names {
			specs = append(specs, detect.Spec{Name: n})
		}
	}
	opt := fdbench.Options{Workers: *workers, Cost: !*noCost && !*sweep}

	// What one measurement runs on: a scenario, or the recording.
	type target struct {
		name string
		run  func([]fdbench.Setting) (fdbench.Result, error)
	}
	var targets []target
	if *replay != "" {
		rec, err := readRecording(*replay)
		if err != nil {
			return err
		}
		if rec.Truncated {
			fmt.Fprintf(c.stderr, "pulse fdbench: %s ends inside a record (the server was killed?); replaying what came before\n", *replay)
		}
		targets = append(targets, target{"replay", func(s []fdbench.Setting) (fdbench.Result, error) {
			return fdbench.Replay(ctx, rec, s, *failEvery, *warmup, uint64(*seed), opt)
		}})
	}
	for _, name := range names {
		sc, err := fdbench.NewScenario(name)
		if err != nil {
			return usageErrorf("--scenario: %v", err)
		}
		sc.Sessions, sc.Seed, sc.Interval, sc.FailEvery, sc.Warmup = *sessions, uint64(*seed), *interval, *failEvery, *warmup
		if given["duration"] {
			sc.Duration = *duration
		}
		if sc.Stalls != nil {
			sc.Stalls.Grace = *grace
			if *noGuard {
				sc.Stalls.Grace = -1
			}
		}
		if err := sc.Validate(); err != nil {
			return usageErrorf("%v", err)
		}
		targets = append(targets, target{name, func(s []fdbench.Setting) (fdbench.Result, error) {
			return fdbench.Run(ctx, sc, s, opt)
		}})
	}

	if *sweep {
		var dets []string
		for _, s := range specs {
			dets = append(dets, s.Name)
		}
		var all []fdbench.SweepResult
		for _, t := range targets {
			res, err := fdbench.Sweep(timing, fdbench.Families(dets...), t.run)
			if err != nil {
				return err
			}
			all = append(all, res)
		}
		if *jsonOut {
			return writeJSON(c.stdout, map[string]any{"sweeps": all})
		}
		for i, res := range all {
			if i > 0 {
				fmt.Fprintln(c.stdout)
			}
			printSweep(c.stdout, res)
		}
		return nil
	}

	settings := make([]fdbench.Setting, len(specs))
	for i, s := range specs {
		p, err := s.Policy(timing)
		if err != nil {
			return detectorError(s.String(), err)
		}
		settings[i] = fdbench.Setting{Spec: s.String(), Policy: p}
	}
	var results []fdbench.Result
	for _, t := range targets {
		res, err := t.run(settings)
		if err != nil {
			return err
		}
		results = append(results, res)
		if !*jsonOut {
			if len(results) > 1 {
				fmt.Fprintln(c.stdout)
			}
			printQoS(c.stdout, res)
		}
	}
	if *jsonOut {
		return writeJSON(c.stdout, map[string]any{"results": results})
	}
	return nil
}

// scenarioList parses --scenario.
func scenarioList(s string) ([]string, error) {
	known := fdbench.ScenarioNames()
	if strings.TrimSpace(s) == "all" {
		return known, nil
	}
	var out []string
	for n := range strings.SplitSeq(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, usageErrorf("--scenario %q: want all, or names from %s separated by commas", n, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

func readRecording(path string) (*fdbench.Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--replay: %w", err)
	}
	defer f.Close()
	rec, err := fdbench.ReadRecording(f)
	if err != nil {
		return nil, fmt.Errorf("--replay %s: %w", path, err)
	}
	if rec.Sessions() == 0 {
		return nil, fmt.Errorf("--replay %s: %w", path, fdbench.ErrNoSessions)
	}
	return rec, nil
}

// detectorError is the usage error for a --detector spec that cannot
// make a policy.
func detectorError(spec string, err error) error {
	return usageErrorf("--detector %q: %s", spec, specProblem(spec, err))
}

// specProblem is what is wrong with a spec, from detect's error, without
// the words and the spec that the caller says already.
func specProblem(spec string, err error) string {
	msg := strings.TrimPrefix(err.Error(), detect.ErrBadSpec.Error())
	msg = strings.TrimPrefix(msg, " "+strconv.Quote(spec))
	return strings.TrimPrefix(msg, ": ")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// detectorList collects --detector specs, checked as they are set.
type detectorList []detect.Spec

func (d *detectorList) Set(s string) error {
	for part := range strings.SplitSeq(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		spec, err := detect.ParseSpec(part)
		if err != nil {
			return errors.New(specProblem(strings.TrimSpace(part), err))
		}
		*d = append(*d, spec)
	}
	return nil
}

func (d *detectorList) String() string {
	if d == nil {
		return ""
	}
	parts := make([]string, len(*d))
	for i, s := range *d {
		parts[i] = s.String()
	}
	return strings.Join(parts, ";")
}

// printQoS prints one scenario's figures, a detector a row.
func printQoS(w io.Writer, r fdbench.Result) {
	s := r.Scenario
	fmt.Fprintf(w, "%s: %s\n", s.Name, s.About)
	fmt.Fprintf(w, "%d sessions, %s client-hours, %d beats", s.Sessions, hours(s.ClientHours), s.Beats)
	if s.IntervalMS > 0 {
		fmt.Fprintf(w, " every %v", time.Duration(s.IntervalMS*float64(time.Millisecond)))
	}
	fmt.Fprintf(w, "; %d failure instants, seed %d", s.Failures, s.Seed)
	switch {
	case s.NoStallGuard:
		fmt.Fprintf(w, "; no stall guard")
	case s.GraceMS > 0:
		fmt.Fprintf(w, "; stall grace %v", time.Duration(s.GraceMS*float64(time.Millisecond)))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDETECTOR\tSUSPECT/h\tDEAD/h\tT_M SUSPECT\tT_M DEAD\tP_A\tCLOSED p50/p99/p99.9\tSILENT p50/p99/p99.9\tHANG p50/p99/p99.9\tSUSP p99\tMASS\tCPU/BEAT\tSTATE")
	for _, d := range r.Detectors {
		cost, state := "-", "-"
		if d.NSPerBeat > 0 {
			cost, state = fmt.Sprintf("%.0fns", d.NSPerBeat), fmt.Sprintf("%dB", d.StateBytes)
		}
		fmt.Fprintf(tw, "%s\t%.4f\t%.5f\t%s\t%s\t%.6f\t%s\t%s\t%s\t%s\t%d (%.1f%%)\t%s\t%s\n", d.Spec,
			d.Suspect.PerClientHour, d.Dead.PerClientHour, seconds(d.Suspect.MeanMS), seconds(d.Dead.MeanMS),
			d.Suspect.QueryAccuracy, triple(d.Detection[fdbench.Closed], true), triple(d.Detection[fdbench.Silent], false),
			triple(d.Detection[fdbench.Hang], false), seconds(suspectP99(d)),
			d.MassSuspicions, 100*d.PeakSuspectShare, cost, state)
	}
	tw.Flush()
}

// suspectP99 is the T_D p99 of the lasting suspicion of silent failures,
// or of hangs where only those were tried (a replay).
func suspectP99(d fdbench.DetectorResult) float64 {
	if p, ok := d.SuspectDetection[fdbench.Silent]; ok {
		return p.P99
	}
	return d.SuspectDetection[fdbench.Hang].P99
}

// hours formats client-hours: whole from a hundred, else to 3 figures.
func hours(h float64) string {
	if h >= 100 {
		return strconv.FormatFloat(h, 'f', 0, 64)
	}
	return strconv.FormatFloat(h, 'g', 3, 64)
}

// triple formats p50/p99/p99.9, in milliseconds or seconds.
func triple(p fdbench.Percentiles, inMS bool) string {
	if p.Count == 0 {
		return "-"
	}
	if inMS {
		return fmt.Sprintf("%.0f/%.0f/%.0fms", p.P50, p.P99, p.P999)
	}
	return fmt.Sprintf("%.2f/%.2f/%.2fs", p.P50/1000, p.P99/1000, p.P999/1000)
}

func seconds(msv float64) string {
	if msv == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fs", msv/1000)
}

// printSweep prints the trade-off curves, a level at a time.
func printSweep(w io.Writer, r fdbench.SweepResult) {
	s := r.Scenario
	fmt.Fprintf(w, "%s: %s\n%d sessions, %s client-hours, %d failure instants, seed %d\n", s.Name, s.About, s.Sessions, hours(s.ClientHours), s.Failures, s.Seed)
	for _, level := range []string{fdbench.LevelDead, fdbench.LevelSuspect} {
		kind := fdbench.Silent
		if len(r.Points) > 0 {
			kind = r.Points[0].TDKind
		}
		fmt.Fprintf(w, "\n%s: mistakes per client-hour against detection time of %s failures\n", strings.ToUpper(level), kind)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DETECTOR\tKNOB\tVALUE\tMISTAKES/h\tT_D p50\tT_D p99\tT_D p99.9\tSPEC")
		for _, p := range r.Points {
			if p.Level != level {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.5f\t%.2fs\t%.2fs\t%.2fs\t%s\n", p.Detector, p.Knob, p.Value, p.PerClientHour,
				p.TD.P50/1000, p.TD.P99/1000, p.TD.P999/1000, p.Spec)
		}
		tw.Flush()
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "\nskipped (raise --misses to allow them): %s\n", strings.Join(r.Skipped, "; "))
	}
}
