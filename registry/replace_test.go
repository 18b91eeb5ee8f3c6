package registry

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/pulsehq/pulse"
)

// Replace ends a session by name and ID, as a cluster does when a newer
// session of the name registered on another node: once, and never a
// successor of the same name.
func TestReplaceByNameAndID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		sub := r.Subscribe(0)
		h, l := join(t, r, "frank")
		if _, err := r.Replace("frank", "not-its-id", "elsewhere"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("replace with another ID: %v, want ErrNotFound", err)
		}
		s, err := r.Replace("frank", h.ID(), "a new session on node b took the name")
		if err != nil || s.ID != h.ID() {
			t.Fatalf("replace: %+v, %v", s, err)
		}
		if _, err := r.Replace("frank", h.ID(), ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second replace: %v, want ErrNotFound", err)
		}
		h2, _ := join(t, r, "frank")
		if _, err := r.Replace("frank", h.ID(), ""); !errors.Is(err, ErrNotFound) || h2.State() != pulse.StateAlive {
			t.Fatalf("a replace of the old ID touched its successor: %v, %v", err, h2.State())
		}
		evs := drain(t, sub)
		if kinds(evs) != "joined:frank replaced:frank joined:frank" {
			t.Fatalf("events: %s", kinds(evs))
		}
		if e := evs[1]; e.Reason != pulse.ReasonReplaced || e.Detail != "a new session on node b took the name" {
			t.Fatalf("replaced event %+v", e)
		}
		if got := l.endedWith(); len(got) != 1 || got[0] != pulse.EventReplaced {
			t.Fatalf("the replaced link ended with %v", got)
		}
	})
}
