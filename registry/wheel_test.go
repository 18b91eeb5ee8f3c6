package registry

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestWheelProcessesEachEntryAtItsSlot(t *testing.T) {
	w := newWheel(10, 64, 0) // 10 ns slots, one turn = 640 ns
	var es []*entry
	ats := []int64{1, 10, 11, 639, 640, 641, 5000, 12345}
	for _, at := range ats {
		e := &entry{}
		es = append(es, e)
		w.add(e, at)
	}
	if w.count != len(ats) {
		t.Fatalf("count = %d, want %d", w.count, len(ats))
	}
	due := map[*entry]int64{}
	for i, e := range es {
		due[e] = ats[i]
	}
	seen := map[*entry]int64{}
	for now := int64(0); now <= 13000; now++ {
		w.advance(now, func(e *entry) {
			if due[e] > now { // a far entry, handed out once a turn
				w.add(e, due[e])
				return
			}
			if _, dup := seen[e]; dup {
				t.Fatalf("entry processed twice")
			}
			seen[e] = now
		})
	}
	for i, e := range es {
		got, ok := seen[e]
		if !ok {
			t.Fatalf("entry at %d never processed", ats[i])
		}
		// processed at the first slot boundary at or after its instant
		want := (ats[i] + 9) / 10 * 10
		if got != want {
			t.Errorf("entry at %d processed at %d, want %d", ats[i], got, want)
		}
	}
	if w.count != 0 {
		t.Fatalf("count = %d after all were processed", w.count)
	}
	if _, ok := w.next(); ok {
		t.Fatal("next() on an empty wheel")
	}
}

func TestWheelFarEntriesComeBackEachTurn(t *testing.T) {
	w := newWheel(1, 64, 0)
	e := &entry{}
	w.add(e, 1000) // 15 turns away
	visits := 0
	for now := int64(1); now <= 1000; now++ {
		w.advance(now, func(x *entry) {
			visits++
			if now < 1000 {
				w.add(x, 1000) // not due: back on the wheel
				return
			}
		})
	}
	if visits != 16 { // once a turn, then at its instant
		t.Fatalf("visited %d times, want 16", visits)
	}
}

func TestWheelRemove(t *testing.T) {
	w := newWheel(1, 64, 0)
	a, b, c := &entry{}, &entry{}, &entry{}
	w.add(a, 5)
	w.add(b, 5)
	w.add(c, 5)
	w.remove(b)
	w.remove(b) // twice is harmless
	w.remove(a)
	var got []*entry
	w.advance(5, func(e *entry) { got = append(got, e) })
	if len(got) != 1 || got[0] != c {
		t.Fatalf("processed %d entries, want only c", len(got))
	}
	w.add(a, 7)
	w.remove(a)
	if _, ok := w.next(); ok || w.used[0] != 0 {
		t.Fatal("slot still marked used after its last entry was removed")
	}
}

func TestWheelStallLongerThanATurn(t *testing.T) {
	w := newWheel(1, 64, 0)
	for at := int64(1); at <= 64; at++ {
		w.add(&entry{}, at)
	}
	n := 0
	w.advance(10_000, func(*entry) { n++ }) // one call after a long stall
	if n != 64 || w.count != 0 {
		t.Fatalf("processed %d of 64 entries after a stall, %d left", n, w.count)
	}
}

func TestWheelNext(t *testing.T) {
	w := newWheel(1000, 64, 0)
	w.advance(100_000, func(*entry) {}) // cursor at slot 100, mid-turn
	e := &entry{}
	w.add(e, 150_500) // slot 151 = index 23 after wrapping
	at, ok := w.next()
	if !ok || at != 151_000 {
		t.Fatalf("next() = %d, %v; want 151000", at, ok)
	}
	w.add(&entry{}, 0) // in the past: the next slot
	if at, _ := w.next(); at != 101_000 {
		t.Fatalf("next() = %d after adding a past instant, want 101000", at)
	}
}

func TestWheelRandomDeadlines(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWheel(1, 256, 0)
	type item struct {
		e  *entry
		at int64
	}
	var items []item
	for range 2000 {
		it := item{&entry{}, 1 + rng.Int64N(5000)}
		items = append(items, it)
		w.add(it.e, it.at)
	}
	due := map[*entry]int64{}
	for _, it := range items {
		due[it.e] = it.at
	}
	order := map[*entry]int64{}
	for now := int64(0); now <= 5000; now += 1 + rng.Int64N(40) {
		w.advance(now, func(e *entry) {
			if due[e] > now {
				w.add(e, due[e])
				return
			}
			order[e] = now
		})
	}
	w.advance(5000, func(e *entry) { order[e] = 5000 })
	for _, it := range items {
		got, ok := order[it.e]
		if !ok || got < it.at || got > it.at+40 {
			t.Fatalf("entry due at %d processed at %d (ok=%v)", it.at, got, ok)
		}
	}
	if !slices.Equal(w.used, make([]uint64, len(w.used))) {
		t.Fatal("bitmap not empty at the end")
	}
}
