package wire

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// FuzzParse checks that no client line makes Parse panic, that every
// rejection carries a known code, and that accepted lines survive a
// format-and-parse round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"HELLO alice", `HELLO bob {"ack":false,"meta":{"r":"eu"},"token":"x"}`, "BEAT", "BEAT 1", "BEAT 1 2",
		"BYE", "BYE see you", "", "HELLO", "BEAT x", "NOPE", "HELLO a {", "HELLO a {\"meta\":{\"\":\"\"}}",
		"BEAT 18446744073709551615 9223372036854775", "\x00", "BYE \xff\xfe",
		`HELLO p {"interval_ms":30000}`, `HELLO p {"interval_ms":0}`, `HELLO p {"interval_ms":-1}`,
		`HELLO p {"interval_ms":9223372036854775807,"ack":false}`, `HELLO p {"interval_ms":1e3}`, `HELLO p {"interval_ms":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Parse(line)
		if err != nil {
			code := CodeOf(err)
			if code != CodeBadCommand && code != CodeBadName && code != CodeBadOptions {
				t.Fatalf("Parse(%q): error %v has unexpected code %q", line, err, code)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Parse(%q): error message spans lines: %q", line, err)
			}
			return
		}
		var again []byte
		switch m.Verb {
		case VerbNone:
			return
		case VerbHello:
			again, err = AppendHello(nil, m.Name, m.Hello)
			if err != nil {
				t.Fatalf("AppendHello(%+v): %v", m, err)
			}
		case VerbBeat:
			if !m.HasSeq {
				return
			}
			again = AppendBeat(nil, m.Seq, m.RTT)
		case VerbBye:
			again = AppendBye(nil, m.Reason)
		}
		back, err := Parse(bytes.TrimSuffix(again, []byte("\n")))
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but its formatting %q does not parse: %v", line, m, again, err)
		}
		if !equalMessage(m, back) {
			t.Fatalf("round trip of %q: %+v became %+v", line, m, back)
		}
	})
}

// FuzzParseReply checks that no server line makes ParseReply panic.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		`WELCOME id {"interval_ms":3000,"timeout_ms":15000,"suspect_ms":4500,"ack":true}`,
		`WELCOME id {"interval_ms":300000,"timeout_ms":1500000,"suspect_ms":450000,"ack":true,"min_interval_ms":1000,"max_interval_ms":300000}`,
		"ACK", "ACK 5", "ERR timeout no beat", "BYE shutdown", "ERR", "WELCOME x {}", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseReply(line)
		if err != nil {
			return
		}
		if r.Kind == ReplyErr && (r.Err == nil || r.Err.Code == "") {
			t.Fatalf("ParseReply(%q): ERR without a code: %+v", line, r)
		}
		if r.Kind == ReplyWelcome && (r.Welcome.Interval() <= 0 || r.Welcome.Timeout() <= 0) {
			t.Fatalf("ParseReply(%q): WELCOME with bad timing: %+v", line, r)
		}
	})
}

// FuzzReader checks that the Reader never returns a line over the limit or
// with a line end inside, whatever the stream and however it is cut.
func FuzzReader(f *testing.F) {
	f.Add([]byte("HELLO a\r\nBEAT\n"), uint8(3))
	f.Add(bytes.Repeat([]byte("x"), MaxLineBytes+3), uint8(200))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		r := NewReader(&chunkReader{b: stream, n: int(chunk%64) + 1})
		total := 0
		for {
			line, err := r.ReadLine()
			if err != nil {
				return
			}
			if len(line) > MaxLineBytes || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("bad line of %d bytes: %q", len(line), line)
			}
			total += len(line) + 1
			if total > len(stream) {
				t.Fatalf("read %d bytes of lines from a stream of %d", total, len(stream))
			}
		}
	})
}

type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}

// FuzzSplitter checks that a Splitter fed a stream in arbitrary chunks
// finds the same lines, and the same line-too-long error, as a Reader.
func FuzzSplitter(f *testing.F) {
	f.Add([]byte("HELLO a\r\nBEAT 1\nBEAT\n\npartial"), []byte{3, 1, 7})
	f.Add(bytes.Repeat([]byte("x"), MaxLineBytes+3), []byte{200})
	f.Add(append(bytes.Repeat([]byte("y"), MaxLineBytes), "\r\nBEAT\n"...), []byte{255, 255})
	f.Fuzz(func(t *testing.T, stream []byte, cuts []byte) {
		var want []string
		var wantErr error
		r := NewReader(bytes.NewReader(stream))
		for {
			line, err := r.ReadLine()
			if err != nil {
				if err != io.EOF {
					wantErr = err
				}
				break
			}
			want = append(want, string(line))
		}

		var got []string
		var gotErr error
		var s Splitter
		rest := stream
		for i := 0; len(rest) > 0 && gotErr == nil; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])*32+1)
			}
			gotErr = s.Split(rest[:n], func(line []byte) bool {
				got = append(got, string(line))
				return true
			})
			rest = rest[n:]
		}
		if !errors.Is(gotErr, wantErr) || (wantErr == nil && gotErr != nil) {
			t.Fatalf("error: splitter %v, reader %v", gotErr, wantErr)
		}
		if wantErr == nil && !slices.Equal(got, want) {
			t.Fatalf("lines: splitter %q, reader %q", got, want)
		}
		if wantErr != nil && (len(got) > len(want) || !slices.Equal(got, want[:len(got)])) {
			t.Fatalf("lines before the error: splitter %q, reader %q", got, want)
		}
	})
}
