// Command detection draws docs/detection.png from the trade-off curves
// that pulse fdbench --sweep measures: for each detector, the rate of
// wrong judgments of live clients against how long a silent failure takes
// to be declared (T_D p99), for dead and for suspect side by side, with
// the targets of issue 6 and the seed's fixed 3 s × 5 marked.
//
//	pulse fdbench --sweep --misses 10 --json > docs/detection/sweep.json
//	cd scripts/plot && go run ./detection -in ../../docs/detection/sweep.json -out ../../docs/detection.png
//
// The input is the JSON of pulse fdbench --sweep --json; the first sweep
// in it is drawn.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/pulsehq/pulse/scripts/plot/figure"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// sweeps is the part of pulse fdbench --sweep --json that is drawn.
type sweeps struct {
	Sweeps []struct {
		Scenario struct {
			Name        string  `json:"name"`
			Sessions    int     `json:"sessions"`
			ClientHours float64 `json:"client_hours"`
		} `json:"scenario"`
		Points []point `json:"points"`
	} `json:"sweeps"`
}

// point is one setting on a curve.
type point struct {
	Detector      string  `json:"detector"`
	Level         string  `json:"level"`
	Spec          string  `json:"spec"`
	PerClientHour float64 `json:"mistakes_per_client_hour"`
	// TD is the detection time the curve is drawn with: of silent
	// failures, or of hangs in a replay (TDKind says which).
	TD struct {
		P99 float64 `json:"p99"`
	} `json:"td_ms"`
	TDKind string `json:"td_kind"`
}

func main() {
	in := flag.String("in", "docs/detection/sweep.json", "pulse fdbench --sweep --json output to plot")
	out := flag.String("out", "docs/detection.png", "PNG to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "detection:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var s sweeps
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(s.Sweeps) == 0 || len(s.Sweeps[0].Points) == 0 {
		return errors.New(in + ": no sweep: make it with pulse fdbench --sweep --json")
	}
	sw := s.Sweeps[0]
	// A rate of 0 cannot sit on a logarithmic axis: it is drawn at the
	// floor, one mistake in the whole run.
	floor := 1 / sw.Scenario.ClientHours
	where := fmt.Sprintf("%s, %d sessions", sw.Scenario.Name, sw.Scenario.Sessions)
	// Dead: the target is T_D p99 ≤ 11 s at the seed's mistake rate (-1:
	// the line goes through the seed's point).
	dead, err := chart(sw.Points, "dead", "Declared dead ("+where+")", floor, "fixed:suspect=4.5s,dead=15s", 11, -1)
	if err != nil {
		return err
	}
	suspect, err := chart(sw.Points, "suspect", "Suspected ("+where+")", floor, "fixed:suspect=4.5s", 4, 0.1)
	if err != nil {
		return err
	}
	return figure.WriteRow(out, 13*vg.Inch, 5*vg.Inch, dead, suspect)
}

var colors = map[string]color.Color{
	"fixed":    color.RGBA{R: 0x44, G: 0x44, B: 0x44, A: 0xff},
	"phi":      color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"chen":     color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"quantile": color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// chart draws the curves of one level: x the T_D p99 of silent failures in
// seconds, y the mistakes per client-hour on a log scale. seed is the spec
// marked as the seed's setting; targetX and targetY, if not 0, are the
// target lines (targetY -1: at the seed's mistake rate).
func chart(pts []point, level, title string, floor float64, seed string, targetX, targetY float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "mistakes per client-hour (" + level + ")"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	p.Add(plotter.NewGrid())
	var seedXY plotter.XYs
	maxX := 0.0
	kind := "silent"
	for _, det := range []string{"fixed", "phi", "chen", "quantile"} {
		var xys plotter.XYs
		for _, q := range pts {
			if q.Detector != det || q.Level != level {
				continue
			}
			xy := plotter.XY{X: q.TD.P99 / 1000, Y: math.Max(q.PerClientHour, floor)}
			kind = q.TDKind
			xys = append(xys, xy)
			maxX = math.Max(maxX, xy.X)
			if q.Spec == seed {
				seedXY = append(seedXY, xy)
			}
		}
		if len(xys) == 0 {
			continue
		}
		slices.SortFunc(xys, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		line, marks, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color, marks.Color = colors[det], colors[det]
		marks.Shape = draw.CircleGlyph{}
		p.Add(line, marks)
		p.Legend.Add(det, line, marks)
	}
	if len(seedXY) > 0 {
		s, err := plotter.NewScatter(seedXY)
		if err != nil {
			return nil, err
		}
		s.Shape, s.Radius, s.Color = draw.RingGlyph{}, vg.Points(7), color.Black
		p.Add(s)
		p.Legend.Add("seed: "+seed, s)
	}
	target := color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	dashes := []vg.Length{vg.Points(6), vg.Points(4)}
	if targetX > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: targetX, Y: floor}, {X: targetX, Y: 10}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Dashes = target, dashes
		p.Add(l)
		p.Legend.Add("target T_D p99 ≤ "+strconv.FormatFloat(targetX, 'f', -1, 64)+" s", l)
	}
	if targetY < 0 && len(seedXY) > 0 {
		targetY = seedXY[0].Y
	}
	if targetY > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: targetY}, {X: maxX, Y: targetY}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Dashes = target, dashes
		p.Add(l)
	}
	p.X.Label.Text = "T_D p99 of a " + kind + " failure (s)"
	p.X.Min = 0
	p.X.Tick.Marker = secondTicks{}
	p.Y.Min, p.Y.Max = floor, 10
	p.Legend.Top = true
	return p, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// secondTicks are a tick a second (every 5 past 15 s), labelled every 1,
// 2 or 5 s as the range asks.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	step, label := 1.0, 1.0
	switch {
	case hi-lo > 20:
		step, label = 1, 5
	case hi-lo > 8:
		step, label = 1, 2
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		t := plot.Tick{Value: v}
		if math.Mod(v, label) == 0 {
			t.Label = strconv.FormatFloat(v, 'f', 0, 64)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// logTicks label the powers of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		v := math.Pow(10, e)
		if v >= lo && v <= hi {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
		for m := 2.0; m < 10; m++ {
			if w := m * v; w >= lo && w <= hi {
				ticks = append(ticks, plot.Tick{Value: w})
			}
		}
	}
	return ticks
}
