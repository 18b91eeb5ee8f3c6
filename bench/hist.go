package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Durations are counted in a log-linear histogram: exact below 32 ns, then
// 32 buckets for every power of two, so that a percentile read from it is
// within 3% of the true one. Histograms of several processes add up.
const (
	subBuckets  = 32
	maxExponent = 34 // 2^40 ns, about 18 minutes: longer durations share the last bucket
	histBuckets = subBuckets * (maxExponent + 2)
)

// bucketOf returns the bucket of a duration in nanoseconds.
func bucketOf(ns int64) int {
	if ns < subBuckets {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 6 // ns>>e is in [32, 64)
	return min(e*subBuckets+int(ns>>e), histBuckets-1)
}

// bucketValue returns the middle of bucket b, in nanoseconds.
func bucketValue(b int) int64 {
	if b < subBuckets {
		return int64(b)
	}
	e := b/subBuckets - 1
	low := int64(b%subBuckets+subBuckets) << e
	return low + (int64(1)<<e)/2
}

// histogram counts durations; record is safe from any goroutine.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	min    atomic.Int64 // nanoseconds + 1, 0 when empty
	max    atomic.Int64
}

func (h *histogram) record(d time.Duration) {
	ns := int64(d)
	h.counts[bucketOf(ns)].Add(1)
	for m := h.max.Load(); ns > m && !h.max.CompareAndSwap(m, ns); m = h.max.Load() {
	}
	for m := h.min.Load(); (m == 0 || ns+1 < m) && !h.min.CompareAndSwap(m, ns+1); m = h.min.Load() {
	}
}

// snapshot returns the counts so far.
func (h *histogram) snapshot() hist {
	var s hist
	for b := range h.counts {
		if n := h.counts[b].Load(); n > 0 {
			if s.counts == nil {
				s.counts = make([]uint64, histBuckets)
			}
			s.counts[b] = n
		}
	}
	s.min, s.max = time.Duration(h.min.Load()-1), time.Duration(h.max.Load())
	return s
}

// hist is a snapshot of a histogram: plain values that add, subtract and
// travel as JSON.
type hist struct {
	counts   []uint64 // nil when empty
	min, max time.Duration
}

func (h hist) count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// add returns the counts of h and o together.
func (h hist) add(o hist) hist {
	if o.counts == nil {
		return h
	}
	if h.counts == nil {
		return hist{counts: slices.Clone(o.counts), min: o.min, max: o.max}
	}
	sum := hist{counts: slices.Clone(h.counts), min: min(h.min, o.min), max: max(h.max, o.max)}
	for b, c := range o.counts {
		sum.counts[b] += c
	}
	return sum
}

// since returns the counts of h that earlier, a snapshot taken before it,
// did not have. The minimum and maximum are h's.
func (h hist) since(earlier hist) hist {
	if earlier.counts == nil || h.counts == nil {
		return h
	}
	d := hist{counts: slices.Clone(h.counts), min: h.min, max: h.max}
	for b, c := range earlier.counts {
		d.counts[b] -= min(c, d.counts[b])
	}
	return d
}

// quantile returns the duration below which a share q of the counts lie
// (nearest rank), or 0 when there are none.
func (h hist) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketValue(b))
			if h.max > 0 {
				v = min(v, h.max)
			}
			return max(v, h.min)
		}
	}
	return h.max
}

// histJSON is a hist on the wire: the buckets that are not empty, as
// [bucket, count] pairs, and the extremes in nanoseconds.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets,omitempty"`
	Min     int64       `json:"min,omitempty"`
	Max     int64       `json:"max,omitempty"`
}

func (h hist) MarshalJSON() ([]byte, error) {
	j := histJSON{Min: int64(h.min), Max: int64(h.max)}
	for b, c := range h.counts {
		if c > 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(b), c})
		}
	}
	return json.Marshal(j)
}

func (h *hist) UnmarshalJSON(data []byte) error {
	var j histJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*h = hist{min: time.Duration(j.Min), max: time.Duration(j.Max)}
	for _, p := range j.Buckets {
		if p[0] >= histBuckets {
			return fmt.Errorf("histogram bucket %d out of range", p[0])
		}
		if h.counts == nil {
			h.counts = make([]uint64, histBuckets)
		}
		h.counts[p[0]] += p[1]
	}
	return nil
}

// Percentiles summarises a set of durations, in milliseconds.
type Percentiles struct {
	// Count is how many durations there are.
	Count uint64 `json:"count"`
	// MinMS, P50MS, P99MS and MaxMS are the least, the median, the 99th
	// percentile and the greatest.
	MinMS float64 `json:"min_ms"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentiles summarises a histogram; nil when it is empty.
func (h hist) percentiles() *Percentiles {
	n := h.count()
	if n == 0 {
		return nil
	}
	return &Percentiles{Count: n, MinMS: millis(h.min), P50MS: millis(h.quantile(0.5)),
		P99MS: millis(h.quantile(0.99)), MaxMS: millis(h.max)}
}

// exactPercentiles summarises a set of values in milliseconds exactly
// (nearest rank); nil when there are none.
func exactPercentiles(ms []float64) *Percentiles {
	if len(ms) == 0 {
		return nil
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	rank := func(q float64) float64 {
		r := int(math.Ceil(q * float64(len(s))))
		return s[min(max(r, 1), len(s))-1]
	}
	return &Percentiles{Count: uint64(len(s)), MinMS: s[0], P50MS: rank(0.5), P99MS: rank(0.99), MaxMS: s[len(s)-1]}
}
