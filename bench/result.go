package bench

import "time"

// Result is what a run measured. Rates, beats and CPU figures are over
// the window; connections, failures and detection over the whole run.
// Its JSON field names are stable.
type Result struct {
	// Server is the heartbeat address the clients connected to.
	Server string `json:"server"`
	// Raw says the clients skipped the handshake (Config.Raw).
	Raw bool `json:"raw"`
	// Acks says the server answered the beats.
	Acks bool `json:"acks"`
	// Clients is how many clients were simulated, by Processes processes,
	// from SourceIPs local addresses (0: as the kernel chose), named
	// NamePrefix and their number.
	Clients    int    `json:"clients"`
	Processes  int    `json:"processes"`
	SourceIPs  int    `json:"source_ips"`
	NamePrefix string `json:"name_prefix"`
	// IntervalMS is the interval the clients beat at; TimeoutMS the
	// timeout the server announced in WELCOME (0 in raw mode).
	IntervalMS float64 `json:"interval_ms"`
	TimeoutMS  float64 `json:"timeout_ms"`
	// RampMS, WindowMS and SettleMS are how long the three phases took.
	RampMS   float64 `json:"ramp_ms"`
	WindowMS float64 `json:"window_ms"`
	SettleMS float64 `json:"settle_ms"`
	// Interrupted says the run was cut short (its context ended): the
	// figures are those gathered until then.
	Interrupted bool `json:"interrupted,omitempty"`

	Connections Connections `json:"connections"`
	Beats       Beats       `json:"beats"`
	// RTT is the round trip from a beat to its ACK, over the window's
	// beats; nil without acks.
	RTT      *Percentiles `json:"rtt"`
	Failures Failures     `json:"failures"`
	// Detection is what the server's events told; nil without its HTTP
	// API (Config.HTTP).
	Detection *Detection `json:"detection"`
	// Server is what the server process used; nil without
	// Config.ServerPID.
	ServerUsage *ServerUsage `json:"server_usage"`
	// GeneratorCPUPercent is the CPU time of the load generator's own
	// processes in the window, as a percentage of one core: when it nears
	// the number of cores, the generator, not the server, is the limit.
	GeneratorCPUPercent float64 `json:"generator_cpu_percent"`
	// Flood is what a flood run beside the clients saw (pulse bench
	// --flood); nil without one. Run does not fill it: its caller runs
	// Flood and sets it.
	Flood *FloodResult `json:"flood,omitempty"`
}

// Connections counts the clients' connections.
type Connections struct {
	// Connected clients connected and registered (WELCOME, or in raw
	// mode, the connection and HELLO written).
	Connected int `json:"connected"`
	// Failed clients could not; FailedBy says why (refused, timeout,
	// address_not_available, too_many_open_files, an ERR code such as
	// too_many_connections, ...), FirstError is the first error in full.
	Failed     int            `json:"failed"`
	FailedBy   map[string]int `json:"failed_by,omitempty"`
	FirstError string         `json:"first_error,omitempty"`
	// Dropped are the connections of clients that had not been told to
	// fail that ended before the run did, and DroppedBy why: the code of
	// the server's ERR (timeout, replaced, kicked, ...), bye when it shut
	// down, closed or reset when it said nothing.
	Dropped   int            `json:"dropped"`
	DroppedBy map[string]int `json:"dropped_by,omitempty"`
}

// Beats counts the heartbeats.
type Beats struct {
	// Sent beats in the window, of which Acked were answered (at any time
	// before the clients stopped) and Unanswered were not, with acks on.
	Sent       uint64 `json:"sent"`
	Acked      uint64 `json:"acked"`
	Unanswered uint64 `json:"unanswered"`
	// PerSecond is Sent over the window's length.
	PerSecond float64 `json:"per_second"`
	// Total is every beat sent, ramp and settle included.
	Total uint64 `json:"total"`
	// Replies, in raw mode, counts the lines the server sent over the
	// whole run (against a server that answers each line, one per HELLO
	// and per beat).
	Replies uint64 `json:"replies,omitempty"`
}

// Failures counts the clients that failed on purpose.
type Failures struct {
	// Silenced clients stopped beating and kept their connection; the
	// server cut SilencedCut of them off (ERR timeout) before the end.
	Silenced    int `json:"silenced"`
	SilencedCut int `json:"silenced_cut"`
	// Disconnected clients closed their connection without BYE.
	Disconnected int `json:"disconnected"`
}

// Detection is what the server's event stream told of the run's clients.
type Detection struct {
	// Dead silenced clients were declared dead, Undetected were not by
	// the end of the run.
	Dead       int `json:"dead"`
	Undetected int `json:"undetected"`
	// Lateness is how late each death was declared: the event's time
	// minus the deadline, the session's last beat + the timeout.
	Lateness *Percentiles `json:"lateness"`
	// Left says how the disconnected clients' sessions ended: by the
	// reason of their left event (closed is right), or by the kind of
	// another event (dead, kicked, ...).
	Left map[string]int `json:"left"`
	// FalseSuspects and FalseDeaths count the suspect and dead events of
	// clients that were beating when they were declared.
	FalseSuspects int `json:"false_suspects"`
	FalseDeaths   int `json:"false_deaths"`
	// RampFalseSuspects and RampFalseDeaths are those of them declared
	// before the window began, while clients were still connecting.
	RampFalseSuspects int `json:"ramp_false_suspects"`
	RampFalseDeaths   int `json:"ramp_false_deaths"`
	// Other counts the other events that ended a healthy client's
	// session: replaced, kicked, left_<reason>.
	Other map[string]int `json:"other,omitempty"`
	// EventsLost says the event stream broke and could not resume where
	// it stopped: some events were not seen.
	EventsLost bool `json:"events_lost,omitempty"`
}

// ServerUsage is what the server process used, from /proc.
type ServerUsage struct {
	PID int `json:"pid"`
	// CPUMS is its CPU time in the window, CPUPercent the same as a
	// percentage of one core.
	CPUMS      float64 `json:"cpu_ms"`
	CPUPercent float64 `json:"cpu_percent"`
	// CPUMicrosPerBeat is CPUMS per beat sent in the window;
	// CPUMicrosPerAck per beat answered, with acks on.
	CPUMicrosPerBeat float64 `json:"cpu_us_per_beat"`
	CPUMicrosPerAck  float64 `json:"cpu_us_per_ack,omitempty"`
	// RSSIdleKiB is its resident memory before any client connected,
	// RSSEndKiB at the end of the window, and RSSPerSessionKiB the
	// difference per client connected.
	RSSIdleKiB       float64 `json:"rss_idle_kib"`
	RSSEndKiB        float64 `json:"rss_end_kib"`
	RSSPerSessionKiB float64 `json:"rss_per_session_kib"`
}

// Progress is what a run has done so far, given to Config.Progress about
// once a second.
type Progress struct {
	// Phase is "ramp", "window" or "settle"; Elapsed how long it has
	// lasted, of Window for the window.
	Phase   string
	Elapsed time.Duration
	Window  time.Duration
	// Clients connected, failed, and how many connections are open.
	Clients, Connected, Failed, Open int
	// BeatsPerSecond and AcksPerSecond since the last Progress, and the
	// round trips of the ACKs in that time.
	BeatsPerSecond, AcksPerSecond float64
	RTTP50, RTTP99                time.Duration
	// Detection says the server's events are followed: then Suspects and
	// Deaths count the suspect and dead events of the run's clients so
	// far, and Dead the silenced clients declared dead, of Silenced.
	Detection                        bool
	Suspects, Deaths, Dead, Silenced int
}
