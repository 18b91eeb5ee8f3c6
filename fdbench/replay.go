package fdbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/pulsehq/pulse/arrivals"
)

// Recording is the beats a server recorded (pulse serve
// --record-arrivals), by session, ready to replay. It holds 8 bytes a
// beat.
type Recording struct {
	// Start is when the recording started.
	Start time.Time
	// Span is the time from the start to the last record.
	Span time.Duration
	// Truncated is set when the file ended inside a record, as it does
	// when the server was killed: what came before is kept.
	Truncated bool
	sessions  []recorded
}

// recorded is one session of a recording.
type recorded struct {
	interval int64
	arrive   []int64 // the registration, then each beat
	end      int64   // its end, or the recording's
}

// ReadRecording reads an arrivals file.
func ReadRecording(r io.Reader) (*Recording, error) {
	ar, err := arrivals.NewReader(r)
	if err != nil {
		return nil, err
	}
	rec := &Recording{Start: ar.Start()}
	index := map[uint64]int{} // session number → its place in rec.sessions
	for {
		x, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			rec.Truncated = true
			break
		}
		if err != nil {
			return nil, err
		}
		at := int64(x.At)
		rec.Span = x.At
		switch x.Kind {
		case arrivals.Join:
			if x.Interval <= 0 {
				return nil, fmt.Errorf("%w: session %d joined with interval %v", arrivals.ErrFormat, x.Session, x.Interval)
			}
			index[x.Session] = len(rec.sessions)
			rec.sessions = append(rec.sessions, recorded{interval: int64(x.Interval), arrive: []int64{at}, end: -1})
		case arrivals.Beat:
			if i, ok := index[x.Session]; ok && rec.sessions[i].end < 0 {
				rec.sessions[i].arrive = append(rec.sessions[i].arrive, at)
			}
		case arrivals.End:
			if i, ok := index[x.Session]; ok && rec.sessions[i].end < 0 {
				rec.sessions[i].end = at
			}
		}
	}
	for i := range rec.sessions {
		if rec.sessions[i].end < 0 {
			rec.sessions[i].end = int64(rec.Span)
		}
	}
	return rec, nil
}

// Sessions returns the number of sessions recorded.
func (r *Recording) Sessions() int { return len(r.sessions) }

// Replay measures every setting on the recorded arrivals. Failures are
// tried at instants drawn as in a generated scenario (every failEvery on
// average, after warmup in each session, from seed); a recording shows
// only what arrived, so only hangs can be tried. Mistakes are judged as
// the detector would have made them, whatever the server that recorded
// did.
func Replay(ctx context.Context, r *Recording, settings []Setting, failEvery, warmup time.Duration, seed uint64, opt Options) (Result, error) {
	if len(r.sessions) == 0 {
		return Result{}, ErrNoSessions
	}
	if failEvery <= 0 {
		return Result{}, fmt.Errorf("%w: the failure spacing must be positive, got %v", ErrInvalidScenario, failEvery)
	}
	res, err := run(ctx, &replayed{r: r, failEvery: failEvery, warmup: warmup, seed: seed}, nil, settings, opt)
	if err != nil {
		return Result{}, err
	}
	res.Scenario.Name = "replay"
	res.Scenario.About = fmt.Sprintf("arrivals recorded from %s for %v", r.Start.UTC().Format(time.RFC3339), r.Span.Round(time.Second))
	res.Scenario.Hours = r.Span.Hours()
	res.Scenario.Seed = seed
	return res, nil
}

// replayed is a recording's sessions as streams.
type replayed struct {
	r                 *Recording
	failEvery, warmup time.Duration
	seed              uint64
}

func (p *replayed) sessions() int { return len(p.r.sessions) }

func (p *replayed) fill(i int, s *stream) {
	s.reset()
	rs := &p.r.sessions[i]
	s.interval, s.end, s.kinds = rs.interval, rs.end, []Kind{Hang}
	// Only arrivals are known: each beat counts as sent when it arrived.
	s.send = append(s.send, rs.arrive...)
	s.arrive = append(s.arrive, rs.arrive...)
	s.txMax = append(s.txMax, rs.arrive...)
	rng := rand.New(rand.NewPCG(p.seed*0x9e3779b97f4a7c15+uint64(i), 2))
	for t := rs.arrive[0] + int64(p.warmup); ; {
		t += int64(float64(p.failEvery) * rng.ExpFloat64())
		if t >= rs.end {
			break
		}
		s.fails = append(s.fails, t)
		s.fin = append(s.fin, t)
	}
}
