// Package figure writes the PNG figures of pulse's docs: plots side by
// side on one canvas.
package figure

import (
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteRow draws plots side by side, aligned, on a canvas of the given
// size, and writes it to the file out as PNG.
func WriteRow(out string, width, height vg.Length, plots ...*plot.Plot) error {
	img := vgimg.New(width, height)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Inch / 4,
		PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, draw.New(img))
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
