package registry

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pulsehq/pulse"
)

func names(ss []pulse.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// allPages follows the cursors of q to the end and returns every session
// name seen and the number of pages.
func allPages(t *testing.T, r *Registry, q Query) ([]string, int) {
	t.Helper()
	var got []string
	for pages := 1; ; pages++ {
		p := r.Page(q)
		got = append(got, names(p.Sessions)...)
		if p.Next == "" {
			return got, pages
		}
		if p.Next <= q.After {
			t.Fatalf("cursor went backwards: %q after %q", p.Next, q.After)
		}
		q.After = p.Next
	}
}

func TestPagesCoverTheTableOnce(t *testing.T) {
	r := newRegistry(t, pulse.DefaultTiming())
	var want []string
	for i := range 250 {
		name := fmt.Sprintf("node-%03d", i)
		want = append(want, name)
		join(t, r, name)
	}
	for _, limit := range []int{1, 7, 100, 250, 1000} {
		got, pages := allPages(t, r, Query{Limit: limit})
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: got %d names, want the 250 in order", limit, len(got))
		}
		if wantPages := (250 + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d (no empty last page)", limit, pages, wantPages)
		}
	}
	if p := r.Page(Query{}); len(p.Sessions) != DefaultPageLimit || p.Counts != (Counts{Alive: 250}) {
		t.Errorf("default page: %d sessions, counts %+v", len(p.Sessions), p.Counts)
	}
	if p := r.Page(Query{Limit: 5000}); len(p.Sessions) != 250 {
		t.Errorf("limit over the max: %d sessions", len(p.Sessions))
	}
	if p := r.Page(Query{Limit: 10_000}); p.Next != "" {
		t.Errorf("whole table in one page still has a cursor %q", p.Next)
	}
}

func TestPagePrefix(t *testing.T) {
	r := newRegistry(t, pulse.DefaultTiming())
	for _, n := range []string{"a", "eu-1", "eu-2", "eu-3", "eu:x", "eu", "eua", "us-1"} {
		join(t, r, n)
	}
	got, _ := allPages(t, r, Query{Prefix: "eu-", Limit: 2})
	if !slices.Equal(got, []string{"eu-1", "eu-2", "eu-3"}) {
		t.Fatalf("prefix eu-: %v", got)
	}
	got, _ = allPages(t, r, Query{Prefix: "eu"})
	if !slices.Equal(got, []string{"eu", "eu-1", "eu-2", "eu-3", "eu:x", "eua"}) {
		t.Fatalf("prefix eu: %v", got)
	}
	if p := r.Page(Query{Prefix: "zz"}); len(p.Sessions) != 0 || p.Next != "" {
		t.Fatalf("no match: %+v", p)
	}
	// A cursor past the prefix range yields nothing more.
	if p := r.Page(Query{Prefix: "eu-", After: "eu-3"}); len(p.Sessions) != 0 || p.Next != "" {
		t.Fatalf("after the last match: %+v", p)
	}
}

func TestPageByStateFollowsTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		hs := map[string]*Handle{}
		for _, n := range []string{"a", "b", "c", "d"} {
			hs[n], _ = join(t, r, n)
		}
		time.Sleep(4 * time.Second)
		hs["a"].Beat(0)
		hs["c"].Beat(0)
		time.Sleep(time.Second) // b and d suspect at 4.5 s
		synctest.Wait()
		suspect, _ := allPages(t, r, Query{State: pulse.StateSuspect})
		alive, _ := allPages(t, r, Query{State: pulse.StateAlive, Limit: 1})
		if !slices.Equal(suspect, []string{"b", "d"}) || !slices.Equal(alive, []string{"a", "c"}) {
			t.Fatalf("suspect %v alive %v", suspect, alive)
		}
		if c := r.Counts(); c != (Counts{Alive: 2, Suspect: 2}) || c.Total() != 4 {
			t.Fatalf("counts %+v", c)
		}
		hs["b"].Beat(0) // recovered
		synctest.Wait()
		hs["d"].Leave(pulse.ReasonBye, "") // left while suspect
		suspect, _ = allPages(t, r, Query{State: pulse.StateSuspect})
		if len(suspect) != 0 || r.Counts() != (Counts{Alive: 3}) {
			t.Fatalf("after recovery and leave: suspect %v counts %+v", suspect, r.Counts())
		}
		time.Sleep(20 * time.Second) // all dead
		synctest.Wait()
		if p := r.Page(Query{}); len(p.Sessions) != 0 || r.Counts() != (Counts{}) {
			t.Fatalf("after the deaths: %v %+v", names(p.Sessions), r.Counts())
		}
	})
}

// A filter that matches few sessions answers in bounded time: the page
// comes back short with a cursor rather than scanning the whole table.
func TestPageScanIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRegistry(t, pulse.DefaultTiming())
		n := 2*pageScanBudget + 10
		hs := make([]*Handle, n)
		for i := range n {
			hs[i], _ = join(t, r, fmt.Sprintf("n%06d", i))
		}
		time.Sleep(4 * time.Second)
		hs[n-1].Beat(0)
		time.Sleep(time.Second) // all suspect but the last
		synctest.Wait()
		p := r.Page(Query{State: pulse.StateAlive})
		if len(p.Sessions) != 0 || p.Next != hs[pageScanBudget-1].Name() {
			t.Fatalf("first page: %d sessions, next %q; want none and a cursor after %d looked at",
				len(p.Sessions), p.Next, pageScanBudget)
		}
		got, pages := allPages(t, r, Query{State: pulse.StateAlive})
		if !slices.Equal(got, []string{hs[n-1].Name()}) || pages != 3 {
			t.Fatalf("alive: %v in %d pages", got, pages)
		}
		// The suspect index answers a suspect filter without scanning.
		if p := r.Page(Query{State: pulse.StateSuspect, Limit: 1000}); len(p.Sessions) != 1000 || p.Next != hs[999].Name() {
			t.Fatalf("suspect: %d, next %q", len(p.Sessions), p.Next)
		}
	})
}

func TestPageByNames(t *testing.T) {
	r := newRegistry(t, pulse.DefaultTiming())
	for _, n := range []string{"a", "b", "c", "d"} {
		join(t, r, n)
	}
	p := r.Page(Query{Names: []string{"d", "zz", "b", "d"}, Limit: 1, After: "c"})
	if !slices.Equal(names(p.Sessions), []string{"b", "d"}) || p.Next != "" || p.Counts.Total() != 4 {
		t.Fatalf("names d zz b d: %v next %q", names(p.Sessions), p.Next)
	}
	if p := r.Page(Query{Names: []string{"a", "b"}, Prefix: "b"}); !slices.Equal(names(p.Sessions), []string{"b"}) {
		t.Fatalf("names with a prefix: %v", names(p.Sessions))
	}
	if p := r.Page(Query{Names: []string{"a"}, State: pulse.StateSuspect}); len(p.Sessions) != 0 {
		t.Fatalf("names with a state: %v", names(p.Sessions))
	}
}
