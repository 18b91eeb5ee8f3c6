package redis

import (
	"slices"
	"strings"
	"sync"

	"github.com/google/btree"

	"github.com/pulsehq/pulse"
	"github.com/pulsehq/pulse/httpapi"
	"github.com/pulsehq/pulse/registry"
)

// view is a node's mirror of the cluster's sessions: loaded from
// pulse:sessions when the node (re)connects, kept current from the event
// stream, and from the node's own events while the store is unreachable.
// It fans the events out to the API's hub.
type view struct {
	mu      sync.Mutex
	byName  map[string]*pulse.Session
	names   *btree.BTreeG[string]
	suspect int
	seq     uint64 // the last event applied
	epoch   string // the epoch of the numbers; changes at every reset
	gen     uint64 // counts resets
	feeds   map[*feed]struct{}
	closed  bool
}

func newView() *view {
	return &view{
		byName: make(map[string]*pulse.Session),
		names:  btree.NewG(32, func(a, b string) bool { return a < b }),
		feeds:  make(map[*feed]struct{}),
	}
}

// reset replaces the mirror with sessions, as of the stream event seq, and
// ends every feed with httpapi.ErrReset so that event streams start afresh
// under epoch.
func (v *view) reset(epoch string, seq uint64, sessions []pulse.Session) {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.byName)
	v.names.Clear(false)
	v.suspect = 0
	for i := range sessions {
		v.put(&sessions[i])
	}
	v.seq, v.epoch = seq, epoch
	v.gen++
	for f := range v.feeds {
		v.endFeed(f, httpapi.ErrReset)
	}
}

// put adds or replaces a session. v.mu is held.
func (v *view) put(s *pulse.Session) {
	if old := v.byName[s.Name]; old != nil {
		if old.State == pulse.StateSuspect {
			v.suspect--
		}
	} else {
		v.names.ReplaceOrInsert(s.Name)
	}
	v.byName[s.Name] = s
	if s.State == pulse.StateSuspect {
		v.suspect++
	}
}

// apply applies one event to the mirror and hands it to the feeds. Its
// number must be above the last one's; a stale one is ignored. If local,
// it is a node's own event declared while the store is unreachable, and is
// numbered after the last.
func (v *view) apply(ev pulse.Event, local bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if local {
		ev.Seq = v.seq + 1
	} else if ev.Seq <= v.seq {
		return
	}
	v.seq = ev.Seq
	if name := ev.Session.Name; name != "" {
		switch cur := v.byName[name]; {
		case ev.Kind.Ends():
			if cur != nil && cur.ID == ev.Session.ID {
				if cur.State == pulse.StateSuspect {
					v.suspect--
				}
				delete(v.byName, name)
				v.names.Delete(name)
			}
		case ev.Kind == pulse.EventJoined || cur != nil && cur.ID == ev.Session.ID:
			s := ev.Session
			v.put(&s)
		}
	}
	for f := range v.feeds {
		select {
		case f.ch <- ev:
		default:
			v.endFeed(f, registry.ErrSlowSubscriber)
		}
	}
}

// noteBeats keeps the beat counts of ss, read from the store, in the
// mirror, for the sessions it holds unchanged and had older counts of: so
// that while the store is unreachable the view answers with the latest
// counts it read, not those of each session's last change.
func (v *view) noteBeats(ss []pulse.Session) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range ss {
		s := &ss[i]
		if cur := v.byName[s.Name]; cur != nil && cur.ID == s.ID && s.Beats > cur.Beats {
			cur.Beats, cur.LastBeat, cur.RTT = s.Beats, s.LastBeat, s.RTT
		}
	}
}

// lookup returns the named session.
func (v *view) lookup(name string) (pulse.Session, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.byName[name]
	if s == nil {
		return pulse.Session{}, false
	}
	return *s, true
}

func (v *view) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.byName)
}

// page answers q as registry.Registry.Page does, over the mirror.
func (v *view) page(q registry.Query) registry.Page {
	limit := q.Limit
	if limit <= 0 {
		limit = registry.DefaultPageLimit
	}
	limit = min(limit, registry.MaxPageLimit)
	v.mu.Lock()
	defer v.mu.Unlock()
	p := registry.Page{Seq: v.seq, Counts: registry.Counts{Alive: len(v.byName) - v.suspect, Suspect: v.suspect}}
	match := func(s *pulse.Session) bool {
		return strings.HasPrefix(s.Name, q.Prefix) && (q.State == 0 || s.State == q.State)
	}
	if len(q.Names) > 0 {
		names := slices.Clone(q.Names[:min(len(q.Names), registry.MaxPageLimit)])
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			if s := v.byName[name]; s != nil && match(s) {
				p.Sessions = append(p.Sessions, *s)
			}
		}
		return p
	}
	from := max(q.After, q.Prefix)
	scanned := 0
	v.names.AscendGreaterOrEqual(from, func(name string) bool {
		if name == q.After {
			return true
		}
		if !strings.HasPrefix(name, q.Prefix) {
			return false
		}
		s := v.byName[name]
		if !match(s) {
			if scanned++; scanned >= 10_000 {
				p.Next = name
				return false
			}
			return true
		}
		if len(p.Sessions) == limit {
			p.Next = p.Sessions[limit-1].Name
			return false
		}
		p.Sessions = append(p.Sessions, *s)
		return true
	})
	return p
}

// subscribe returns a feed of the events applied from now on, and the
// epoch of their numbers.
func (v *view) subscribe(buffer int) (*feed, string) {
	if buffer <= 0 {
		buffer = registry.DefaultSubscriberBuf
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	f := &feed{v: v, ch: make(chan pulse.Event, buffer), from: v.seq + 1}
	if v.closed {
		f.closed, f.err = true, registry.ErrClosed
		close(f.ch)
	} else {
		v.feeds[f] = struct{}{}
	}
	return f, v.epoch
}

// close ends every feed: the node is closing.
func (v *view) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	for f := range v.feeds {
		v.endFeed(f, registry.ErrClosed)
	}
}

// endFeed closes f for err. v.mu is held.
func (v *view) endFeed(f *feed, err error) {
	if f.closed {
		return
	}
	f.closed, f.err = true, err
	delete(v.feeds, f)
	close(f.ch)
}

// feed is a stream of the view's events; it implements httpapi.Subscription.
type feed struct {
	v      *view
	ch     chan pulse.Event
	from   uint64
	err    error // guarded by v.mu
	closed bool  // guarded by v.mu
}

// C returns the channel of events.
func (f *feed) C() <-chan pulse.Event { return f.ch }

// From returns the lowest number the feed may deliver.
func (f *feed) From() uint64 { return f.from }

// Err says why C was closed.
func (f *feed) Err() error {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	return f.err
}

// Close ends the feed.
func (f *feed) Close() {
	f.v.mu.Lock()
	defer f.v.mu.Unlock()
	f.v.endFeed(f, nil)
}
