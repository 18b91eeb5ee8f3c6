package pulse

// State is the liveness of a session as the server judges it.
type State uint8

// The states of a session. A session starts alive, becomes suspect when it
// misses its suspect deadline, becomes alive again (recovered) when a beat
// arrives while suspect, and is dead when it misses its dead deadline.
const (
	StateAlive State = iota + 1
	StateSuspect
	StateDead
)

var stateNames = enumNames{typ: "state", names: []string{StateAlive: "alive", StateSuspect: "suspect", StateDead: "dead"}}

// String returns the lower-case name of the state: "alive", "suspect" or "dead".
func (s State) String() string { return stateNames.name(uint8(s)) }

// MarshalText encodes the state as its name.
func (s State) MarshalText() ([]byte, error) { return stateNames.marshal(uint8(s)) }

// UnmarshalText decodes a state from its name.
func (s *State) UnmarshalText(text []byte) error {
	v, err := ParseState(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseState returns the state with the given name.
func ParseState(name string) (State, error) {
	v, err := stateNames.parse(name)
	return State(v), err
}
