package wire

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseClientLines(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		line string
		want Message
	}{
		{"", Message{}},
		{"   ", Message{}},
		{"HELLO alice", Message{Verb: VerbHello, Name: "alice"}},
		{"HELLO web-1.eu:a_b", Message{Verb: VerbHello, Name: "web-1.eu:a_b"}},
		{"HELLO alice {}", Message{Verb: VerbHello, Name: "alice"}},
		{`HELLO alice {"ack":false}`, Message{Verb: VerbHello, Name: "alice", Hello: HelloOptions{Ack: &no}}},
		{`HELLO alice {"ack":true,"token":"t0k","unknown":[1,2]}`, Message{Verb: VerbHello, Name: "alice", Hello: HelloOptions{Ack: &yes, Token: "t0k"}}},
		{`HELLO phone-1 {"interval_ms":30000}`, Message{Verb: VerbHello, Name: "phone-1", Hello: HelloOptions{IntervalMS: ptr[int64](30000)}}},
		{`HELLO big {"interval_ms":9223372036854775807}`, Message{Verb: VerbHello, Name: "big", Hello: HelloOptions{IntervalMS: ptr[int64](9223372036854775807)}}},
		{`HELLO  alice   {"meta": {"region": "eu"}}  `, Message{Verb: VerbHello, Name: "alice", Hello: HelloOptions{Meta: map[string]string{"region": "eu"}}}},
		{"BEAT", Message{Verb: VerbBeat}},
		{"BEAT 0", Message{Verb: VerbBeat, HasSeq: true}},
		{"BEAT 42", Message{Verb: VerbBeat, Seq: 42, HasSeq: true}},
		{"BEAT 18446744073709551615", Message{Verb: VerbBeat, Seq: 1<<64 - 1, HasSeq: true}},
		{"BEAT 7 1500", Message{Verb: VerbBeat, Seq: 7, HasSeq: true, RTT: 1500 * time.Microsecond}},
		{"\tBEAT 7\t", Message{Verb: VerbBeat, Seq: 7, HasSeq: true}},
		{"BYE", Message{Verb: VerbBye}},
		{"BYE going home", Message{Verb: VerbBye, Reason: "going home"}},
		{"BYE \xff", Message{Verb: VerbBye, Reason: "\uFFFD"}},
		{"BYE a\x00b\fc\r", Message{Verb: VerbBye, Reason: "a b c"}},
		{"BYE a\u009b31mred\u0085x", Message{Verb: VerbBye, Reason: "a 31mred x"}},
		{"HELLO\ttabby\t{}", Message{Verb: VerbHello, Name: "tabby"}},
		{"BEAT\t1 \t 2", Message{Verb: VerbBeat, Seq: 1, HasSeq: true, RTT: 2 * time.Microsecond}},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.line))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		if !equalMessage(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func equalMessage(a, b Message) bool {
	if a.Verb != b.Verb || a.Name != b.Name || a.Seq != b.Seq || a.HasSeq != b.HasSeq || a.RTT != b.RTT || a.Reason != b.Reason {
		return false
	}
	x, y := a.Hello, b.Hello
	if x.Token != y.Token || x.WantsAck() != y.WantsAck() || (x.Ack == nil) != (y.Ack == nil) || len(x.Meta) != len(y.Meta) ||
		(x.IntervalMS == nil) != (y.IntervalMS == nil) || x.Interval() != y.Interval() {
		return false
	}
	for k, v := range x.Meta {
		if y.Meta[k] != v {
			return false
		}
	}
	return true
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		line string
		code Code
		msg  string // a part of the message
	}{
		{"HI there", CodeBadCommand, `unknown command "HI"`},
		{"hello alice", CodeBadCommand, "want HELLO, BEAT or BYE"},
		{"\x00\x01", CodeBadCommand, `"\x00\x01"`},
		{"HELLO", CodeBadName, "needs a name"},
		{"HELLO al/ice", CodeBadName, `"al/ice"`},
		{"HELLO " + strings.Repeat("a", 65), CodeBadName, "1-64"},
		{"HELLO h\xc3\xa9", CodeBadName, "1-64"},
		{"HELLO alice nope", CodeBadOptions, "JSON object"},
		{"HELLO alice [1]", CodeBadOptions, "JSON object"},
		{"HELLO alice {", CodeBadOptions, "bad JSON"},
		{`HELLO alice {"ack":"yes"}`, CodeBadOptions, `"ack" has the wrong type`},
		{`HELLO alice {"meta":{"a":1}}`, CodeBadOptions, "meta must be an object of strings"},
		{`HELLO alice {"meta":[]}`, CodeBadOptions, "meta must be an object of strings"},
		{`HELLO alice {"meta":{"bad key":"x"}}`, CodeBadOptions, `meta key "bad key"`},
		{`HELLO alice {"meta":{"k":"` + strings.Repeat("v", 257) + `"}}`, CodeBadOptions, "over 256 bytes"},
		{`HELLO alice {} {}`, CodeBadOptions, "bad JSON"},
		{`HELLO alice {"interval_ms":0}`, CodeBadOptions, "interval_ms must be a positive number of milliseconds, got 0; leave it out"},
		{`HELLO alice {"interval_ms":-5}`, CodeBadOptions, "got -5"},
		{`HELLO alice {"interval_ms":1.5}`, CodeBadOptions, "interval_ms must be a whole number of milliseconds, such as 30000, got number 1.5"},
		{`HELLO alice {"interval_ms":"30s"}`, CodeBadOptions, "interval_ms must be a whole number of milliseconds, such as 30000, got string"},
		{`HELLO alice {"interval_ms":1e30}`, CodeBadOptions, "interval_ms must be a whole number"},
		{"BEAT x", CodeBadCommand, "unsigned integer"},
		{"BEAT -1", CodeBadCommand, "unsigned integer"},
		{"BEAT 18446744073709551616", CodeBadCommand, "unsigned integer"},
		{"BEAT 1 2 3", CodeBadCommand, "at most two arguments"},
		{"BEAT 1 x", CodeBadCommand, "round-trip time"},
		{"BEAT 1 99999999999999999", CodeBadCommand, "round-trip time"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.line))
		var we *Error
		if !errors.As(err, &we) {
			t.Errorf("Parse(%q) error = %v, want *Error", tt.line, err)
			continue
		}
		if we.Code != tt.code || !strings.Contains(we.Message, tt.msg) {
			t.Errorf("Parse(%q) = %v, want code %s with %q", tt.line, err, tt.code, tt.msg)
		}
	}
}

func TestParseManyMetaKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`HELLO a {"meta":{`)
	for i := range MaxMetaKeys + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":"v"`)
	}
	b.WriteString(`}}`)
	_, err := Parse([]byte(b.String()))
	if CodeOf(err) != CodeBadOptions || !strings.Contains(err.Error(), "at most 32") {
		t.Fatalf("33 meta labels: err = %v, want bad_options at most 32", err)
	}
}

func TestByeReasonIsCut(t *testing.T) {
	long := "BYE " + strings.Repeat("é", 200) // 400 bytes of two-byte runes
	m, err := Parse([]byte(long))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Reason) > MaxReasonBytes || len(m.Reason) != 256 || strings.ContainsRune(m.Reason, '\uFFFD') {
		t.Fatalf("reason of %d bytes (%q…), want 256 bytes of whole runes", len(m.Reason), m.Reason[:8])
	}
	odd := "BYE a" + strings.Repeat("é", 200) // the limit falls inside a rune
	m, _ = Parse([]byte(odd))
	if len(m.Reason) != 255 || strings.ContainsRune(m.Reason, '\uFFFD') {
		t.Fatalf("reason of %d bytes, want 255 bytes of whole runes", len(m.Reason))
	}
}

func TestParseBeatDoesNotAllocate(t *testing.T) {
	for _, line := range []string{"BEAT", "BEAT 123456", "BEAT 123456 789"} {
		b := []byte(line)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := Parse(b); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("Parse(%q) allocates %v times, want 0", line, allocs)
		}
	}
}

func BenchmarkParseBeat(b *testing.B) {
	line := []byte("BEAT 123456 842")
	for b.Loop() {
		if _, err := Parse(line); err != nil {
			b.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestHelloInterval: the interval a client asks for, in time; a request
// beyond any server's bound counts as that bound, without overflowing.
func TestHelloInterval(t *testing.T) {
	for _, tt := range []struct {
		ms   *int64
		want time.Duration
	}{
		{nil, 0},
		{ptr[int64](1), time.Millisecond},
		{ptr[int64](30000), 30 * time.Second},
		{ptr[int64](86_400_000), 24 * time.Hour},
		{ptr[int64](86_400_001), 24 * time.Hour},
		{ptr[int64](math.MaxInt64), 24 * time.Hour},
	} {
		if got := (HelloOptions{IntervalMS: tt.ms}).Interval(); got != tt.want {
			t.Errorf("Interval() of %v ms = %v, want %v", tt.ms, got, tt.want)
		}
	}
}
