package fdbench

import (
	"time"

	"github.com/pulsehq/pulse/detect"
)

// Kind is a kind of failure.
type Kind string

// The kinds of failure.
const (
	// Closed: the peer's kernel closes the connection (FIN or RST).
	Closed Kind = "closed"
	// Silent: the host vanishes; nothing more arrives, not even
	// retransmissions.
	Silent Kind = "silent"
	// Hang: the client stops beating; what it sent still arrives.
	Hang Kind = "hang"
)

var allKinds = []Kind{Closed, Silent, Hang}

// tally accumulates what one detector setting did over sessions.
type tally struct {
	beats               int64
	upTime              time.Duration // client time observed, summed
	suspects, deaths    int64         // mistakes
	suspectFor, deadFor time.Duration // their durations, summed
	suspectAt           []int64       // instants of the suspect mistakes
	detectDead          map[Kind][]time.Duration
	detectSuspect       map[Kind][]time.Duration
	sessions            int
	ended               int64 // dead mistakes that ended a session (same as deaths)
	holds               windows
}

func newTally(held windows) *tally {
	return &tally{holds: held, detectDead: map[Kind][]time.Duration{}, detectSuspect: map[Kind][]time.Duration{}}
}

// hold returns when a judgment due at t is made: at t, or at the end of
// the stall grace that holds it.
func (t *tally) hold(at time.Duration) int64 {
	if w, ok := t.holds.find(int64(at)); ok {
		return w.to
	}
	return int64(at)
}

// evalBuf holds the deadlines after each beat of one stream, as judged.
type evalBuf struct{ suspect, dead []int64 }

// add runs the policy over one session's stream: a tracker from the
// registration, a beat at every arrival, as the registry would call it.
// It counts every suspect and dead judgment that a later arrival proves
// wrong (a dead one ends the session: the client comes back with its next
// beat, as a new session with a new tracker), then answers, for every
// failure instant, when the session would have been declared had it
// failed then.
func (t *tally) add(s *stream, p detect.Policy, b *evalBuf) {
	n := len(s.arrive)
	if n == 0 {
		return
	}
	t.sessions++
	t.beats += int64(n)
	t.upTime += time.Duration(s.end - s.arrive[0])
	b.suspect, b.dead = b.suspect[:0], b.dead[:0]
	iv := time.Duration(s.interval)
	tr := p.Track(iv)
	d := tr.Beat(time.Duration(s.arrive[0]))
	for k := 0; ; k++ {
		hs, hd := t.hold(d.Suspect), t.hold(d.Dead)
		b.suspect, b.dead = append(b.suspect, hs), append(b.dead, hd)
		if k == n-1 {
			break
		}
		next := s.arrive[k+1]
		if next > s.end {
			next = s.end // observation ends; a judgment after it is no mistake
		}
		if hs < next {
			t.suspects++
			t.suspectFor += time.Duration(next - hs)
			t.suspectAt = append(t.suspectAt, hs)
		}
		if hd < next {
			t.deaths++
			t.deadFor += time.Duration(next - hd)
			tr = p.Track(iv)
		}
		d = tr.Beat(time.Duration(s.arrive[k+1]))
	}
	for j, c := range s.fails {
		last := lastBefore(s.send, c)
		if last < 0 {
			continue
		}
		for _, kind := range s.kinds {
			seen := last
			if kind == Silent {
				seen = lastBefore(s.txMax, c+1) // txMax[i] <= c
				if seen < 0 {
					continue
				}
			}
			dead, suspect := judge(s, b, seen, c)
			if kind == Closed {
				dead = min(dead, s.fin[j])
			} else {
				t.detectSuspect[kind] = append(t.detectSuspect[kind], time.Duration(max(0, suspect-c)))
			}
			t.detectDead[kind] = append(t.detectDead[kind], time.Duration(max(0, dead-c)))
		}
	}
}

// judge returns when a session that failed at c, after the server had
// received its beats up to last (those after never come), is declared
// dead, and when the suspicion that ends in that death began. A beat in
// flight at c may still arrive before a judgment, which it then
// forestalls.
func judge(s *stream, b *evalBuf, last int, c int64) (dead, suspect int64) {
	first := lastBefore(s.arrive[:last+1], c+1) // the last beat read by c
	for k := max(first, 0); k < last; k++ {
		if b.dead[k] < s.arrive[k+1] && b.dead[k] >= c {
			return b.dead[k], b.suspect[k]
		}
	}
	return b.dead[last], b.suspect[last]
}
