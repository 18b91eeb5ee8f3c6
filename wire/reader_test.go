package wire

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, r *Reader) ([]string, error) {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadLine()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

func TestReaderSplitsLines(t *testing.T) {
	in := "HELLO a\r\nBEAT 1\nBEAT 2\r\n\nBYE\nunfinished"
	for name, src := range map[string]io.Reader{
		"whole":      strings.NewReader(in),
		"byte":       iotest.OneByteReader(strings.NewReader(in)),
		"half":       iotest.HalfReader(strings.NewReader(in)),
		"data+error": iotest.DataErrReader(strings.NewReader(in)),
	} {
		lines, err := readAll(t, NewReader(src))
		if err != io.EOF {
			t.Errorf("%s: err = %v, want io.EOF", name, err)
		}
		want := []string{"HELLO a", "BEAT 1", "BEAT 2", "", "BYE"}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Errorf("%s: lines = %q, want %q", name, lines, want)
		}
	}
}

func TestReaderLineLimit(t *testing.T) {
	max := strings.Repeat("x", MaxLineBytes)
	tests := []struct {
		name string
		in   string
		ok   int // lines read before the error
		err  error
	}{
		{"max with LF", max + "\nBEAT\n", 2, io.EOF},
		{"max with CRLF", max + "\r\nBEAT\n", 2, io.EOF},
		{"one over with LF", max + "x\nBEAT\n", 0, ErrLineTooLong},
		{"one over with CRLF", max + "x\r\n", 0, ErrLineTooLong},
		{"endless", strings.Repeat("y", 3*MaxLineBytes), 0, ErrLineTooLong},
		{"after a good line", "BEAT\n" + max + "xx", 1, ErrLineTooLong},
	}
	for _, tt := range tests {
		lines, err := readAll(t, NewReader(iotest.HalfReader(strings.NewReader(tt.in))))
		if len(lines) != tt.ok || err != tt.err {
			t.Errorf("%s: read %d lines, err %v; want %d, %v", tt.name, len(lines), err, tt.ok, tt.err)
		}
	}
}

func TestReaderBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("BEAT 1\nBEAT 2\nBE"))
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if got := r.Buffered(); got != len("BEAT 2\nBE") {
		t.Fatalf("Buffered() = %d after the first line", got)
	}
	if !r.Ready() {
		t.Fatal("Ready() = false with a whole line buffered")
	}
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if r.Ready() {
		t.Fatal("Ready() = true with only half a line buffered")
	}
}

func TestReaderPassesErrors(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("BEAT\n"), iotest.ErrReader(boom)))
	lines, err := readAll(t, r)
	if len(lines) != 1 || !errors.Is(err, boom) {
		t.Fatalf("lines %q, err %v; want one line then boom", lines, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	if _, err := NewReader(zeroReader{}).ReadLine(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}
