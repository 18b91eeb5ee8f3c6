package bench

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
)

// role is what a client does at the failure time.
type role uint8

const (
	healthy role = iota // beats to the end
	silent              // stops beating, keeps its connection
	leaver              // closes its connection
)

// roles says which of n clients fail, spread evenly over their numbers: of
// the n, silent are silenced and leave disconnect. Every process computes
// the same roles from the same three numbers.
type roles struct {
	N      int `json:"n"`
	Silent int `json:"silent"`
	Leave  int `json:"leave"`
}

func newRoles(n int, silence, disconnect float64) roles {
	s := min(int(math.Round(silence*float64(n))), n)
	l := min(int(math.Round(disconnect*float64(n))), n-s)
	return roles{N: n, Silent: s, Leave: l}
}

// of returns the role of client i. The silenced are the i where
// ⌊i·Silent/N⌋ steps up; the leavers are picked the same way among the
// others, by their rank among them.
func (r roles) of(i int) role {
	if r.Silent > 0 && (i+1)*r.Silent/r.N != i*r.Silent/r.N {
		return silent
	}
	if m := r.N - r.Silent; r.Leave > 0 && m > 0 {
		k := i - i*r.Silent/r.N // how many of 0..i-1 are not silenced
		if (k+1)*r.Leave/m != k*r.Leave/m {
			return leaver
		}
	}
	return healthy
}

// phase returns when in each interval client i beats, as a share of the
// interval in [0, 1). The golden-ratio sequence spreads any run of
// consecutive clients evenly, so that the beats stay uniform in time while
// the clients connect one after another, and whichever processes hold them.
func phase(i int) float64 {
	const golden = 0.6180339887498949
	_, f := math.Modf((float64(i) + 0.5) * golden)
	return f
}

// names maps client numbers to session names and back.
type names struct {
	prefix string
	n      int
}

func (nm names) name(i int) string { return nm.prefix + strconv.Itoa(i) }

// index returns the number of the client named name, if it is one of them.
func (nm names) index(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, nm.prefix)
	if !ok || rest == "" || (rest[0] == '0' && len(rest) > 1) {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= nm.n {
		return 0, false
	}
	return i, true
}

// randomPrefix returns "bench-", four random hex digits and "-".
func randomPrefix() string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "bench-" + hex.EncodeToString(b[:]) + "-"
}
