package fdbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/detect"
)

// recordingBytes encodes an arrivals file by hand, as package arrivals
// documents the format, with records at exact instants (µs).
type recordingBytes struct {
	b    bytes.Buffer
	last int64
}

func newRecordingBytes() *recordingBytes {
	r := &recordingBytes{}
	r.b.WriteString("PULSEARR\x01")
	r.b.Write(binary.LittleEndian.AppendUint64(nil, uint64(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())))
	return r
}

func (r *recordingBytes) record(kind byte, session uint64, atUS int64, rest ...any) {
	b := []byte{kind}
	b = binary.AppendUvarint(b, session)
	b = binary.AppendUvarint(b, uint64(atUS-r.last))
	r.last = atUS
	for _, x := range rest {
		switch x := x.(type) {
		case uint64:
			b = binary.AppendUvarint(b, x)
		case string:
			b = binary.AppendUvarint(b, uint64(len(x)))
			b = append(b, x...)
		}
	}
	r.b.Write(b)
}

// A recording replayed, with figures worked by hand: session 1 beats every
// second from 0 to 10 s, is silent until 14 s, beats at 15 and 16 s and
// leaves at 16.5 s. The fixed policy of 1 s × 3 (suspect after 1.5 s, dead
// after 3 s) suspects it wrongly at 11.5 s for 2.5 s and declares it dead
// wrongly at 13 s for 1 s. Session 2 joins at 16 s and is seen to the end.
func TestReplayExact(t *testing.T) {
	r := newRecordingBytes()
	s := int64(1_000_000)
	r.record('J', 1, 0, uint64(s), "0000000000000001", "one")
	for _, at := range []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15} {
		r.record('B', 1, at*s, uint64(at+1)) // seq at
	}
	r.record('J', 2, 16*s, uint64(s), "0000000000000002", "two")
	r.record('B', 1, 16*s, uint64(0))
	r.record('E', 1, 16*s+s/2, "left", "bye")
	r.record('B', 2, 17*s, uint64(0))
	r.record('B', 7, 17*s, uint64(0)) // a session never joined: ignored
	r.b.Write([]byte{'B', 2})         // cut inside a record: a killed server

	rec, err := ReadRecording(&r.b)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Sessions() != 2 || !rec.Truncated || rec.Span != 17*time.Second {
		t.Fatalf("recording: %d sessions, truncated %v, span %v", rec.Sessions(), rec.Truncated, rec.Span)
	}
	p, err := detect.New("fixed", pulse.Timing{Interval: time.Second, Misses: 3})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Replay(context.Background(), rec, []Setting{{Spec: "fixed", Policy: p}}, time.Second, 0, 1, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sc := res.Scenario; sc.Sessions != 2 || sc.Beats != 14+2 || sc.ClientHours != (16.5+1)/3600 {
		t.Fatalf("scenario %+v", sc)
	}
	d := res.Detectors[0]
	if d.Suspect.Count != 1 || d.Suspect.MeanMS != 2500 || d.Dead.Count != 1 || d.Dead.MeanMS != 1000 {
		t.Fatalf("mistakes: suspect %+v, dead %+v", d.Suspect, d.Dead)
	}
	if want := 1 - 2.5/17.5; math.Abs(d.Suspect.QueryAccuracy-want) > 1e-12 {
		t.Fatalf("P_A %v, want %v", d.Suspect.QueryAccuracy, want)
	}
	if _, ok := d.Detection[Silent]; ok || d.Detection[Hang].Count == 0 {
		t.Fatalf("a replay tries hangs only: %+v", d.Detection)
	}
}
