package pulse

import "fmt"

// enumNames maps the values of a small enum (State, EventKind) to their
// lower-case names; index 0 is unused.
type enumNames struct {
	typ   string   // the Go type, for errors
	names []string // by value
}

func (e enumNames) valid(v uint8) bool { return int(v) < len(e.names) && e.names[v] != "" }

func (e enumNames) name(v uint8) string {
	if e.valid(v) {
		return e.names[v]
	}
	return fmt.Sprintf("%s(%d)", e.typ, v)
}

func (e enumNames) marshal(v uint8) ([]byte, error) {
	if !e.valid(v) {
		return nil, fmt.Errorf("pulse: invalid %s %d", e.typ, v)
	}
	return []byte(e.names[v]), nil
}

func (e enumNames) parse(name string) (uint8, error) {
	for i, n := range e.names {
		if n != "" && n == name {
			return uint8(i), nil
		}
	}
	return 0, fmt.Errorf("pulse: unknown %s %q (want one of %v)", e.typ, name, e.names[1:])
}
