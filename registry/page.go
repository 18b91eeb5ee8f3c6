package registry

import (
	"slices"
	"strings"

	"github.com/google/btree"

	"github.com/pulsehq/pulse"
)

// MaxPageLimit is the largest page Page returns; DefaultPageLimit is the
// size of a page that asks for none.
const (
	MaxPageLimit     = 1000
	DefaultPageLimit = 100
	// pageScanBudget bounds how many sessions one Page looks at beyond the
	// ones it returns, so that a filter few sessions match still answers
	// in bounded time on a large table: the page comes back short, with a
	// cursor to go on from.
	pageScanBudget = 10_000
)

// Query selects a page of the live sessions, in name order.
type Query struct {
	// After is the cursor of the previous page (Page.Next): the page starts
	// after this name. Empty means from the start.
	After string
	// Prefix keeps only the names that start with it.
	Prefix string
	// State keeps only the sessions in that state; zero means any.
	State pulse.State
	// Limit is the most sessions to return: zero means DefaultPageLimit,
	// and it is capped at MaxPageLimit.
	Limit int
	// Names, if not empty, asks for exactly these sessions (those of them
	// that are live and pass the filters), all in one page: After and
	// Limit do not apply. At most MaxPageLimit names are looked at.
	Names []string
}

// Page is one page of sessions, taken at one instant.
type Page struct {
	// Sessions are the matching sessions, sorted by name.
	Sessions []pulse.Session
	// Next is the cursor of the next page, empty if this is the last. A
	// page may hold fewer than Limit sessions and still have a Next when a
	// filter matched few of the sessions it looked at.
	Next string
	// Seq is the number of the last event declared when the page was
	// taken: the page shows the table as those events left it.
	Seq uint64
	// Counts are the numbers of live sessions by state, over the whole
	// table, at the same instant.
	Counts Counts
}

// Counts are the numbers of live sessions by state.
type Counts struct {
	Alive   int
	Suspect int
}

// Total returns the number of live sessions.
func (c Counts) Total() int { return c.Alive + c.Suspect }

// index is a set of entries ordered by name.
type index = btree.BTreeG[*entry]

func newIndex() *index {
	return btree.NewG(32, func(a, b *entry) bool { return a.name < b.name })
}

// Page returns the sessions that q selects. It holds the registry's lock
// for a bounded time whatever the size of the table (beats do not wait on
// it), and allocates only the page.
func (r *Registry) Page(q Query) Page {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultPageLimit
	}
	limit = min(limit, MaxPageLimit)
	from := q.After
	if q.Prefix > from {
		from = q.Prefix
	}

	if len(q.Names) > 0 {
		return r.lookupPage(q)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Page{Seq: r.seq, Counts: r.countsLocked()}
	tree := r.index
	if q.State == pulse.StateSuspect {
		tree = r.suspects // exact: no scanning past the alive
	}
	p.Sessions = make([]pulse.Session, 0, min(limit, tree.Len()))
	scanned := 0
	visit := func(e *entry) bool {
		if e.name == q.After {
			return true // the cursor is exclusive
		}
		if !strings.HasPrefix(e.name, q.Prefix) {
			return false // past the prefix's range
		}
		if q.State != 0 && e.loadState() != q.State {
			if scanned++; scanned >= pageScanBudget {
				p.Next = e.name
				return false
			}
			return true
		}
		if len(p.Sessions) == limit {
			p.Next = p.Sessions[limit-1].Name // there is at least one more
			return false
		}
		p.Sessions = append(p.Sessions, e.snapshot())
		return true
	}
	tree.AscendGreaterOrEqual(&entry{name: from}, visit)
	return p
}

// lookupPage answers a query for named sessions.
func (r *Registry) lookupPage(q Query) Page {
	names := slices.Clone(q.Names[:min(len(q.Names), MaxPageLimit)])
	slices.Sort(names)
	names = slices.Compact(names)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := Page{Seq: r.seq, Counts: r.countsLocked(), Sessions: make([]pulse.Session, 0, len(names))}
	for _, name := range names {
		e := r.byName[name]
		if e == nil || !strings.HasPrefix(name, q.Prefix) || (q.State != 0 && e.loadState() != q.State) {
			continue
		}
		p.Sessions = append(p.Sessions, e.snapshot())
	}
	return p
}

// Counts returns the numbers of live sessions by state.
func (r *Registry) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countsLocked()
}

func (r *Registry) countsLocked() Counts {
	suspect := r.suspects.Len()
	return Counts{Alive: len(r.byName) - suspect, Suspect: suspect}
}
