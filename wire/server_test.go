package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAppendServerLines(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{string(AppendAck(nil, 0, false)), "ACK\n"},
		{string(AppendAck(nil, 42, true)), "ACK 42\n"},
		{string(AppendErr(nil, CodeTimeout, "no beat for 15s")), "ERR timeout no beat for 15s\n"},
		{string(AppendErr(nil, CodeKicked, "")), "ERR kicked\n"},
		{string(AppendErr(nil, CodeBadCommand, "two\nlines\r\n")), "ERR bad_command two lines \n"},
		{string(AppendBye(nil, "shutdown")), "BYE shutdown\n"},
		{string(AppendBye(nil, "")), "BYE\n"},
		{string(AppendBeat(nil, 9, 0)), "BEAT 9\n"},
		{string(AppendBeat(nil, 9, 1234567*time.Nanosecond)), "BEAT 9 1234\n"},
		{string(AppendWelcome(nil, "s1", Welcome{IntervalMS: 3000, TimeoutMS: 15000, SuspectMS: 4500, Ack: true})),
			`WELCOME s1 {"interval_ms":3000,"timeout_ms":15000,"suspect_ms":4500,"ack":true}` + "\n"},
		{string(AppendWelcome(nil, "s2", Welcome{IntervalMS: 300000, TimeoutMS: 1500000, SuspectMS: 450000, MinIntervalMS: 1000, MaxIntervalMS: 300000})),
			`WELCOME s2 {"interval_ms":300000,"timeout_ms":1500000,"suspect_ms":450000,"ack":false,"min_interval_ms":1000,"max_interval_ms":300000}` + "\n"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestAppendHello(t *testing.T) {
	no := false
	got, err := AppendHello(nil, "web-1", HelloOptions{})
	if err != nil || string(got) != "HELLO web-1\n" {
		t.Fatalf("AppendHello = %q, %v", got, err)
	}
	got, err = AppendHello(nil, "web-1", HelloOptions{Meta: map[string]string{"zone": "a"}, Ack: &no})
	if err != nil || string(got) != `HELLO web-1 {"meta":{"zone":"a"},"ack":false}`+"\n" {
		t.Fatalf("AppendHello = %q, %v", got, err)
	}
	// What a client writes, a server parses back.
	m, err := Parse(got[:len(got)-1])
	if err != nil || m.Name != "web-1" || m.Hello.WantsAck() || m.Hello.Meta["zone"] != "a" {
		t.Fatalf("Parse(AppendHello) = %+v, %v", m, err)
	}
	ms := int64(30000)
	got, err = AppendHello(nil, "phone-1", HelloOptions{IntervalMS: &ms})
	if err != nil || string(got) != `HELLO phone-1 {"interval_ms":30000}`+"\n" {
		t.Fatalf("AppendHello with an interval = %q, %v", got, err)
	}
	if m, err := Parse(got[:len(got)-1]); err != nil || m.Hello.Interval() != 30*time.Second {
		t.Fatalf("Parse(AppendHello) = %+v, %v", m, err)
	}
}

func TestParseReply(t *testing.T) {
	r, err := ParseReply([]byte(`WELCOME 0af3-1 {"interval_ms":3000,"timeout_ms":15000,"suspect_ms":4500,"ack":true,"future":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != ReplyWelcome || r.SessionID != "0af3-1" || r.Welcome.Interval() != 3*time.Second ||
		r.Welcome.Timeout() != 15*time.Second || r.Welcome.Suspect() != 4500*time.Millisecond || !r.Welcome.Ack {
		t.Fatalf("WELCOME parsed as %+v", r)
	}
	if r, err := ParseReply([]byte("ACK 77")); err != nil || r.Kind != ReplyAck || !r.HasSeq || r.Seq != 77 {
		t.Fatalf("ACK 77 parsed as %+v, %v", r, err)
	}
	if r, err := ParseReply([]byte("ACK")); err != nil || r.Kind != ReplyAck || r.HasSeq {
		t.Fatalf("ACK parsed as %+v, %v", r, err)
	}
	r, err = ParseReply([]byte("ERR replaced a newer session took the name"))
	if err != nil || r.Kind != ReplyErr || r.Err.Code != CodeReplaced || r.Err.Message != "a newer session took the name" {
		t.Fatalf("ERR parsed as %+v, %v", r, err)
	}
	if !errors.Is(r.Err, &Error{Code: CodeReplaced}) || errors.Is(r.Err, &Error{Code: CodeKicked}) {
		t.Fatal("errors.Is does not match *Error by code")
	}
	if r, err := ParseReply([]byte("BYE shutdown")); err != nil || r.Kind != ReplyBye || r.Reason != "shutdown" {
		t.Fatalf("BYE parsed as %+v, %v", r, err)
	}
	for _, bad := range []string{"", "HELLO", "ACK x", "ERR", "WELCOME", "WELCOME id", "WELCOME id {", `WELCOME id {"interval_ms":0,"timeout_ms":1}`} {
		if _, err := ParseReply([]byte(bad)); !errors.Is(err, ErrBadReply) {
			t.Errorf("ParseReply(%q) err = %v, want ErrBadReply", bad, err)
		}
	}
}

func TestErrorFormatting(t *testing.T) {
	e := &Error{Code: CodeBadName, Message: "name too long"}
	if e.Error() != "bad_name: name too long" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if CodeOf(e) != CodeBadName || CodeOf(errors.New("x")) != "" {
		t.Fatal("CodeOf does not find the code")
	}
	if !strings.Contains(ErrLineTooLong.Error(), "4096") {
		t.Fatal("ErrLineTooLong does not say the limit")
	}
}
