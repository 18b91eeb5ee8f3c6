// Package pulse holds the shared vocabulary of pulse, a heartbeat-based liveness
// and presence service: sessions, their states, the events that tell of their
// changes, and the timing defaults that decide when a silent session is suspect
// and when it is dead.
//
// The package does no I/O. The pieces that do live in subpackages:
//
//   - wire parses and formats the line protocol spoken over TCP;
//   - detect turns a session's beat arrivals into its suspect and dead deadlines;
//   - registry keeps the table of live sessions and fans out their events;
//   - server accepts connections and glues wire, detect and registry together;
//   - client registers with a server and keeps a session alive.
package pulse
