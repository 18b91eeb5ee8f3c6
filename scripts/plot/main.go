// Command plot draws docs/benchmarks.png from the figures that
// scripts/bench.sh measures: server CPU per beat and memory per session
// against the number of sessions, for pulse and the epoll floor, with acks
// on and off.
//
//	go run . -in ../../docs/bench/results.csv -out ../../docs/benchmarks.png
//
// The input is CSV with a header: system,acks,sessions,cpu_us_per_beat,rss_bytes_per_session.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/pulsehq/pulse/scripts/plot/figure"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// row is one measured configuration.
type row struct {
	system   string
	acks     bool
	sessions float64
	cpuUS    float64
	rssBytes float64
}

func main() {
	in := flag.String("in", "docs/bench/results.csv", "figures to plot")
	out := flag.String("out", "docs/benchmarks.png", "PNG to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	rows, err := read(in)
	if err != nil {
		return err
	}
	cpu, err := chart(rows, "Server CPU per beat", "µs per beat", func(r row) (float64, bool) { return r.cpuUS, r.cpuUS > 0 })
	if err != nil {
		return err
	}
	mem, err := chart(rows, "Server memory per session (RSS over idle)", "bytes per session", func(r row) (float64, bool) {
		return r.rssBytes, r.system == "pulse" && r.rssBytes > 0
	})
	if err != nil {
		return err
	}
	return figure.WriteRow(out, 12*vg.Inch, 4.5*vg.Inch, cpu, mem)
}

func read(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	want := []string{"system", "acks", "sessions", "cpu_us_per_beat", "rss_bytes_per_session"}
	if !slices.Equal(header, want) {
		return nil, fmt.Errorf("%s: header %v, want %v", path, header, want)
	}
	var rows []row
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var x row
		x.system = rec[0]
		x.acks = rec[1] == "true"
		nums := []*float64{&x.sessions, &x.cpuUS, &x.rssBytes}
		for i, p := range nums {
			if *p, err = strconv.ParseFloat(rec[2+i], 64); err != nil {
				return nil, fmt.Errorf("%s: %v: %w", path, rec, err)
			}
		}
		rows = append(rows, x)
	}
}

// chart draws one line per (system, acks) of the value that pick returns.
func chart(rows []row, title, ylabel string, pick func(row) (float64, bool)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "sessions, each beating once a second"
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	styles := map[string]color.Color{
		"pulse": color.RGBA{R: 0x2e, G: 0x9e, B: 0x5b, A: 0xff},
		"floor": color.RGBA{R: 0x88, G: 0x88, B: 0x88, A: 0xff},
	}
	for _, system := range []string{"pulse", "floor"} {
		for _, acks := range []bool{true, false} {
			var pts plotter.XYs
			for _, r := range rows {
				if v, ok := pick(r); ok && r.system == system && r.acks == acks {
					pts = append(pts, plotter.XY{X: r.sessions, Y: v})
				}
			}
			if len(pts) == 0 {
				continue
			}
			slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
			line, points, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = styles[system], styles[system]
			if !acks {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			name := system
			if system == "floor" {
				name = "epoll_floor"
			}
			if acks {
				name += ", acks on"
			} else {
				name += ", acks off"
			}
			p.Add(line, points)
			p.Legend.Add(name, line, points)
		}
	}
	p.Legend.Top = true
	p.X.Tick.Marker = wholeTicks{}
	p.Y.Tick.Marker = wholeTicks{}
	return p, nil
}

// wholeTicks are the default ticks, labelled without decimals.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', 0, 64)
		}
	}
	return ticks
}
