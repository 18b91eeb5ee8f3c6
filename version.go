package pulse

// Version is the version of pulse, sent to clients in WELCOME as
// "pulse/<version>".
const Version = "0.1.0"
