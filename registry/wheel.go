package registry

import "math/bits"

// wheel is a hashed timing wheel of entries, keyed by the instant at which
// each must be looked at again. Adding and removing are O(1); advancing
// costs O(1) per entry that falls due plus a scan of the bitmap of
// non-empty slots. An instant further away than one turn of the wheel lands
// in the slot it maps to and is simply looked at (and put back) once a turn,
// so the wheel needs no overflow list and no per-turn counters.
//
// Slot k holds the instants in ((k-1)·res, k·res] and is processed when the
// clock reaches k·res, so an entry is never processed before its instant and
// at most res after it. The wheel is not safe for concurrent use; the
// registry guards it with its lock.
type wheel struct {
	res    int64    // nanoseconds per slot
	heads  []*entry // the list of each slot, linked through entry.next/prev
	mask   int64    // len(heads) - 1; len(heads) is a power of two
	used   []uint64 // bit i set: heads[i] != nil
	cursor int64    // absolute index of the last processed slot
	count  int      // entries queued
}

func newWheel(res int64, slots int, now int64) *wheel {
	if slots&(slots-1) != 0 || slots < 64 {
		panic("registry: wheel slots must be a power of two and at least 64")
	}
	return &wheel{
		res:    res,
		heads:  make([]*entry, slots),
		mask:   int64(slots - 1),
		used:   make([]uint64, slots/64),
		cursor: now / res,
	}
}

// add queues e to be looked at at instant at (or at the next slot if that
// has passed). e must not be queued.
func (w *wheel) add(e *entry, at int64) {
	k := (at + w.res - 1) / w.res // ceil: slot k is processed at k·res ≥ at
	if k <= w.cursor {
		k = w.cursor + 1
	}
	i := k & w.mask
	e.checkAt.Store(k * w.res)
	e.prev = nil
	e.next = w.heads[i]
	if e.next != nil {
		e.next.prev = e
	}
	w.heads[i] = e
	w.used[i>>6] |= 1 << (i & 63)
	w.count++
}

// remove takes e off the wheel if it is queued.
func (w *wheel) remove(e *entry) {
	at := e.checkAt.Load()
	if at == noCheck {
		return
	}
	i := (at / w.res) & w.mask
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		w.heads[i] = e.next
		if e.next == nil {
			w.used[i>>6] &^= 1 << (i & 63)
		}
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.next, e.prev = nil, nil
	e.checkAt.Store(noCheck)
	w.count--
}

// advance processes every slot whose time has come by now, handing each of
// its entries to due (which may add it again, at a later instant).
func (w *wheel) advance(now int64, due func(*entry)) {
	target := now / w.res
	if target <= w.cursor {
		return
	}
	// One turn visits every slot; a longer gap (a stall) needs no more.
	from := w.cursor + 1
	if target-from > w.mask {
		from = target - w.mask
	}
	for k := from; k <= target; {
		next, ok := w.nextUsed(k, target)
		if !ok {
			break
		}
		w.cursor = next
		i := next & w.mask
		e := w.heads[i]
		w.heads[i] = nil
		w.used[i>>6] &^= 1 << (i & 63)
		for e != nil {
			n := e.next
			e.next, e.prev = nil, nil
			e.checkAt.Store(noCheck)
			w.count--
			due(e)
			e = n
		}
		k = next + 1
	}
	w.cursor = target
}

// walk hands to fn, without taking them off, the entries of the slots
// that advance(upTo) would process: those whose instant has come by upTo.
// Entries further than a turn away that share those slots are handed too.
func (w *wheel) walk(upTo int64, fn func(*entry)) {
	target := upTo / w.res
	from := max(w.cursor+1, target-w.mask)
	for k := from; k <= target; {
		next, ok := w.nextUsed(k, target)
		if !ok {
			return
		}
		for e := w.heads[next&w.mask]; e != nil; e = e.next {
			fn(e)
		}
		k = next + 1
	}
}

// nextUsed returns the first absolute slot in [from, to] whose list is not
// empty. The range must span at most one turn.
func (w *wheel) nextUsed(from, to int64) (int64, bool) {
	for k := from; k <= to; {
		i := k & w.mask
		word := w.used[i>>6] >> (i & 63)
		if word != 0 {
			k += int64(bits.TrailingZeros64(word))
			if k <= to {
				return k, true
			}
			return 0, false
		}
		k += 64 - (i & 63) // on to the next word
	}
	return 0, false
}

// next returns the instant of the first non-empty slot after the cursor,
// within one turn, or false if the wheel is empty.
func (w *wheel) next() (int64, bool) {
	if w.count == 0 {
		return 0, false
	}
	k, ok := w.nextUsed(w.cursor+1, w.cursor+1+w.mask)
	if !ok {
		return 0, false
	}
	return k * w.res, true
}
