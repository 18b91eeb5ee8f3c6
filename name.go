package pulse

// MaxNameLen is the longest session name, in bytes.
const MaxNameLen = 64

// ValidName reports whether s is a valid session name: 1 to 64 characters,
// each a letter, digit, '.', '_', '-' or ':'.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte[s[i]] {
			return false
		}
	}
	return true
}

var nameByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "._-:" {
		t[c] = true
	}
	return t
}()
