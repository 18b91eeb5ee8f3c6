package wire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/pulsehq/pulse"
)

// FuzzHelloOptions checks the JSON options of HELLO on their own: no input
// makes ParseHelloOptions panic; every rejection is bad_options with a
// one-line message; what is accepted keeps the limits (meta, a positive
// interval), and survives formatting into a HELLO line and parsing it back.
func FuzzHelloOptions(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"ack":false}`, `{"ack":true,"token":"eyJhbGciOiJIUzI1NiJ9.e30.x"}`,
		`{"meta":{"region":"eu","rack":"r1"}}`, `{"meta":{"":"x"}}`, `{"meta":{"a b":"x"}}`,
		`{"meta":{"k":"` + strings.Repeat("v", 257) + `"}}`, `{"interval_ms":30000}`, `{"interval_ms":0}`,
		`{"interval_ms":-5}`, `{"interval_ms":1.5}`, `{"interval_ms":"1000"}`, `{"interval_ms":99999999999999999999}`,
		`{"token":"\u0000\n"}`, `{"token":"\ud800"}`, `{"unknown":[1,2,{"x":null}]}`, `[]`, `null`, `{`, ` {"ack":true} `,
		`{"ack":true}{"ack":false}`, `{"meta":null,"ack":null,"interval_ms":null}`, "{\"token\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseHelloOptions(b)
		if err != nil {
			if CodeOf(err) != CodeBadOptions {
				t.Fatalf("ParseHelloOptions(%q): %v has code %q, want bad_options", b, err, CodeOf(err))
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("ParseHelloOptions(%q): error message spans lines: %q", b, err)
			}
			return
		}
		if err := ValidateMeta(o.Meta); err != nil {
			t.Fatalf("ParseHelloOptions(%q) accepted meta that ValidateMeta refuses: %v", b, err)
		}
		if o.IntervalMS != nil && *o.IntervalMS <= 0 {
			t.Fatalf("ParseHelloOptions(%q) accepted interval_ms %d", b, *o.IntervalMS)
		}
		if d := o.Interval(); d < 0 || d > pulse.MaxInterval {
			t.Fatalf("ParseHelloOptions(%q): interval %v out of 0..%v", b, d, pulse.MaxInterval)
		}
		line, err := AppendHello(nil, "fuzz", o)
		if err != nil {
			t.Fatalf("AppendHello of the options of %q: %v", b, err)
		}
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("options of %q formatted as %q: not one line", b, line)
		}
		m, err := Parse(line[:len(line)-1])
		if err != nil {
			t.Fatalf("options of %q formatted as %q do not parse: %v", b, line, err)
		}
		if m.Verb != VerbHello || m.Name != "fuzz" || !reflect.DeepEqual(normalized(m.Hello), normalized(o)) {
			t.Fatalf("round trip of %q: %+v became %+v", b, o, m.Hello)
		}
	})
}

// normalized treats empty and nil meta alike: formatting leaves both out.
func normalized(o HelloOptions) HelloOptions {
	if len(o.Meta) == 0 {
		o.Meta = nil
	}
	return o
}
