// Package fdbench measures failure detectors the way Chen, Toueg and
// Aguilera define their quality of service ("On the Quality of Service of
// Failure Detectors", IEEE ToC 2002): how long a real failure takes to be
// declared (detection time T_D), and how often, and for how long, a live
// client is wrongly suspected or declared dead (mistake rate and mistake
// duration T_M, query accuracy P_A).
//
// It drives the production detectors, the detect.Policy implementations
// the server runs, through simulated time: no clock, no sockets, and the
// same answer for the same seed on any machine. A scenario describes a
// fleet of sessions (their networks, their pauses and outages, the
// server's own stalls); each session's beats are sent on a client's
// ticker, carried by a model of one TCP connection (in-order delivery,
// retransmission after a loss with a timeout of 200 ms that doubles), and
// handed to the detector as arrival instants, exactly as the registry
// would.
//
// Mistakes are counted on the whole run, in which no client fails.
// Failures are hypothetical: at instants drawn at random phases, the
// evaluation asks when the detector would have declared the session had
// it failed then, in each of three ways:
//
//   - closed: the peer's kernel closes the connection (FIN or RST); the
//     server learns it one network delay later, whatever the detector;
//   - silent: the host vanishes (power, cable): nothing more arrives, not
//     even the beats that were waiting to be retransmitted;
//   - hang: the process stops beating but its kernel keeps the socket
//     open and delivers what it had already sent.
//
// Since the arrivals of the beats sent before an instant do not depend on
// what happens after it, one pass over a session's stream answers for all
// its failure instants at once.
package fdbench
