package arrivals

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// What is written reads back, record for record, with instants that never
// go backwards.
func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arrivals.bin")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	a := w.Joined("0f1c3a5e00000001", "web-1", 3*time.Second)
	b := w.Joined("0f1c3a5e00000002", "db-1", 1500*time.Millisecond)
	w.Beat(a, 7, true)
	w.Beat(b, 0, false)
	w.Beat(a, 8, true)
	w.Ended("0f1c3a5e00000001", "left", "closed")
	w.Ended("unknown", "dead", "timeout") // never joined: not recorded
	w.Beat(b, 1<<63, true)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	w.Beat(b, 9, true) // after Close: ignored, no panic

	want := []Record{
		{Kind: Join, Session: 1, ID: "0f1c3a5e00000001", Name: "web-1", Interval: 3 * time.Second},
		{Kind: Join, Session: 2, ID: "0f1c3a5e00000002", Name: "db-1", Interval: 1500 * time.Millisecond},
		{Kind: Beat, Session: 1, Seq: 7, HasSeq: true},
		{Kind: Beat, Session: 2},
		{Kind: Beat, Session: 1, Seq: 8, HasSeq: true},
		{Kind: End, Session: 1, EndKind: "left", Reason: "closed"},
		{Kind: Beat, Session: 2, Seq: 1 << 63, HasSeq: true},
	}
	got := readAll(t, path)
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d: %+v", len(got), len(want), got)
	}
	var last time.Duration
	for i := range want {
		if got[i].At < last {
			t.Errorf("record %d at %v, before the one before (%v)", i, got[i].At, last)
		}
		last = got[i].At
		got[i].At = 0
		if got[i] != want[i] {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func readAll(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(r.Start()); d < 0 || d > time.Minute {
		t.Errorf("recording started %v ago", d)
	}
	var out []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
}

// Beats from many goroutines at once all arrive, each session's in
// order.
func TestConcurrentBeats(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	const sessions, beats = 8, 5000
	var wg sync.WaitGroup
	for i := range sessions {
		n := w.Joined(string(rune('a'+i)), "s", time.Second)
		wg.Go(func() {
			for s := range uint64(beats) {
				w.Beat(n, s, true)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 {
		t.Fatalf("%d records dropped writing to memory", w.Dropped())
	}
	r, err := NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	next := map[uint64]uint64{}
	count := 0
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != Beat {
			continue
		}
		if rec.Seq != next[rec.Session] {
			t.Fatalf("session %d: beat %d after %d", rec.Session, rec.Seq, next[rec.Session]-1)
		}
		next[rec.Session]++
		count++
	}
	if count != sessions*beats {
		t.Fatalf("%d beats read, want %d", count, sessions*beats)
	}
}

// A disk that does not keep up costs dropped records, never a blocked
// beat.
func TestSlowDiskDrops(t *testing.T) {
	stuck := &blockingWriter{release: make(chan struct{})}
	w, err := NewWriter(stuck)
	if err != nil {
		t.Fatal(err)
	}
	n := w.Joined("id", "s", time.Second)
	for s := range uint64(200_000) { // ~1 MB: more than every buffer holds
		w.Beat(n, s, true)
	}
	if w.Dropped() == 0 {
		t.Fatal("nothing dropped while the disk was stuck")
	}
	close(stuck.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// blockingWriter takes the header, then blocks every write until released.
type blockingWriter struct {
	release chan struct{}
	calls   int
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	if b.calls++; b.calls > 1 {
		<-b.release
	}
	return len(p), nil
}

// Not an arrivals file, another version, a file cut inside a record,
// damaged bytes: each is told apart.
func TestReaderErrors(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Joined("id", "name", time.Second)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := NewReader(bytes.NewReader([]byte("HELLO web-1\n"))); !errors.Is(err, ErrFormat) {
		t.Errorf("not arrivals: %v, want ErrFormat", err)
	}
	v2 := bytes.Clone(good)
	v2[len(magic)] = 2
	if _, err := NewReader(bytes.NewReader(v2)); !errors.Is(err, ErrFormat) {
		t.Errorf("version 2: %v, want ErrFormat", err)
	}
	r, err := NewReader(bytes.NewReader(good[:len(good)-2]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut short: %v, want io.ErrUnexpectedEOF", err)
	}
	bad := append(bytes.Clone(good[:headerLen]), 'X', 1, 1)
	r, _ = NewReader(bytes.NewReader(bad))
	if _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Errorf("unknown kind: %v, want ErrFormat", err)
	}
	huge := append(bytes.Clone(good[:headerLen]), 'E', 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f)
	r, _ = NewReader(bytes.NewReader(huge))
	if _, err := r.Next(); !errors.Is(err, ErrFormat) {
		t.Errorf("a 4 GB string: %v, want ErrFormat", err)
	}
}

// FuzzReader: whatever the bytes, reading them ends in io.EOF or an
// error, never a panic, and never more records than bytes.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	n := w.Joined("0f1c3a5e00000001", "web-1", 3*time.Second)
	w.Beat(n, 1, true)
	w.Beat(n, 0, false)
	w.Ended("0f1c3a5e00000001", "dead", "timeout")
	w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; ; i++ {
			if i > len(data) {
				t.Fatalf("more records than bytes")
			}
			if _, err := r.Next(); err != nil {
				return
			}
		}
	})
}

// BenchmarkBeat measures what recording costs a beat: a lock, a clock
// reading and a few bytes appended, with the disk never behind.
func BenchmarkBeat(b *testing.B) {
	w, err := NewWriter(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	n := w.Joined("id", "name", 3*time.Second)
	var seq uint64
	for b.Loop() {
		w.Beat(n, seq, true)
		seq++
	}
	// Beats come faster here than any server takes them: a few may be
	// dropped while the writer goroutine catches up.
	b.ReportMetric(float64(w.Dropped())/float64(max(seq, 1)), "dropped/op")
}
