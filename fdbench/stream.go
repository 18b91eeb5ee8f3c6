package fdbench

import (
	"math/rand/v2"
	"sort"
	"time"
)

// stream is the traffic of one session, as the server would see it, and
// the instants at which its failure is tried.
type stream struct {
	interval int64
	// send[i] is when beat i left the client (beat 0 is HELLO);
	// arrive[i] when the server read it, non-decreasing.
	send, arrive []int64
	// txMax[i] is the latest instant at which any of beats 0 to i was
	// transmitted for the last time: a host that vanishes at c delivers
	// beats 0 to i only if txMax[i] <= c.
	txMax []int64
	// fails are the failure instants, ascending, and fin the arrival of a
	// FIN sent at each.
	fails, fin []int64
	// end is when observation ends: mistakes are counted up to it.
	end int64
	// kinds are the failure kinds that the stream can tell apart.
	kinds []Kind
}

// reset empties s for reuse, keeping its arrays.
func (s *stream) reset() {
	s.send, s.arrive, s.txMax = s.send[:0], s.arrive[:0], s.txMax[:0]
	s.fails, s.fin = s.fails[:0], s.fin[:0]
}

// generate fills s with session i of the scenario. Each session has its
// own random streams, derived from the seed and its number, so that the
// figures do not depend on how sessions are spread over goroutines.
func (sc *Scenario) generate(i int, stalls windows, s *stream) {
	s.reset()
	p := sc.profileOf(i)
	seed := sc.Seed*0x9e3779b97f4a7c15 + uint64(i)
	rng := rand.New(rand.NewPCG(seed, 1))     // the session's traffic
	failRng := rand.New(rand.NewPCG(seed, 2)) // failure instants and FINs: the traffic does not depend on them
	end := int64(sc.Duration)
	iv := int64(sc.Interval)
	s.interval, s.end, s.kinds = iv, end, allKinds

	c := &conn{sc: sc, net: p.Net, outages: events(p.Outages, end, rng)}
	pauses := events(p.Pauses, end, rng)

	// Failure instants: a Poisson process after the warm-up, ending a few
	// minutes before the end so that beats in flight still arrive.
	for t := int64(sc.Warmup); ; {
		t += int64(float64(sc.FailEvery) * failRng.ExpFloat64())
		if t >= end-int64(5*time.Minute) {
			break
		}
		s.fails = append(s.fails, t)
	}

	// The client: HELLO at a random phase, then a beat on every tick of
	// its ticker, except that ticks in a pause are dropped but one, which
	// fires when the pause ends.
	phase := int64(rng.Float64() * float64(iv))
	nextFail := 0
	emit := func(t int64) {
		if p.SendJitter > 0 {
			t += int64(float64(p.SendJitter) * rng.ExpFloat64())
		}
		if n := len(s.send); n > 0 {
			t = max(t, s.send[n-1])
		}
		for ; nextFail < len(s.fails) && s.fails[nextFail] <= t; nextFail++ {
			fin, _, _ := c.deliver(s.fails[nextFail], failRng)
			s.fin = append(s.fin, fin)
		}
		a, tx := c.send(t, rng)
		s.send = append(s.send, t)
		s.arrive = append(s.arrive, a)
		if n := len(s.txMax); n > 0 {
			tx = max(tx, s.txMax[n-1])
		}
		s.txMax = append(s.txMax, tx)
	}
	pi := 0
	for tick := phase; tick < end; tick += iv {
		for pi < len(pauses) && pauses[pi].to <= tick {
			pi++
		}
		if pi < len(pauses) && pauses[pi].from <= tick {
			// Ticks in a pause: one fires at its end; skip to the first
			// tick after it.
			w := pauses[pi]
			if w.to < end {
				emit(w.to)
			}
			tick += (w.to - tick) / iv * iv
			continue
		}
		emit(tick)
	}
	for ; nextFail < len(s.fails); nextFail++ {
		fin, _, _ := c.deliver(s.fails[nextFail], failRng)
		s.fin = append(s.fin, fin)
	}

	// A server stall holds what arrives in it until its end.
	if len(stalls) > 0 {
		for j, a := range s.arrive {
			if w, ok := stalls.find(a); ok {
				s.arrive[j] = w.to
			}
		}
		for j, f := range s.fin {
			if w, ok := stalls.find(f); ok {
				s.fin[j] = w.to
			}
		}
	}
}

// lastBefore returns the index of the last element of xs (ascending) that
// is less than t, or -1.
func lastBefore(xs []int64, t int64) int {
	return sort.Search(len(xs), func(i int) bool { return xs[i] >= t }) - 1
}

// stallWindows returns the stalls of the scenario, and the windows in
// which judgments are held (each stall and its grace).
func (sc *Scenario) stallWindows() (stalls, held windows) {
	st := sc.Stalls
	if st == nil {
		return nil, nil
	}
	end := int64(sc.Duration)
	for i, t := 0, int64(st.Every); t < end; i, t = i+1, t+int64(st.Every) {
		l := int64(st.Lengths[i%len(st.Lengths)])
		stalls = append(stalls, window{t, t + l})
		if st.Grace < 0 { // no guard: judged a moment before the stall's arrivals are read
			held = append(held, window{t, t + l - 1})
		} else {
			held = append(held, window{t, t + l + int64(st.Grace)})
		}
	}
	return stalls, held
}
