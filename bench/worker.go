package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// The requests of the coordinator to the processes that hold the clients.
// Each is answered with the counters after it.
const (
	opStart  = "start"  // connect the clients, at the share's rate
	opStats  = "stats"  // nothing: just the counters
	opWindow = "window" // the measurement window begins
	opFail   = "fail"   // the failing clients fail
	opEnd    = "end"    // the window is over
	opStop   = "stop"   // every client says BYE and closes
)

// The worker protocol, one JSON object a line. The parent writes requests
// on the worker's standard input, the first one a start with the share;
// the worker answers each with one line on its standard output. The worker
// stops its clients and exits after stop, or as soon as its standard input
// ends, which happens when the parent exits, however it exits.
type (
	workerRequest struct {
		Op    string `json:"op"`
		Share *share `json:"share,omitempty"`
	}
	workerReply struct {
		Stats *stats `json:"stats,omitempty"`
		Error string `json:"error,omitempty"`
	}
)

// group is a set of clients the coordinator drives: in this process, or
// in a worker.
type group interface {
	// call performs a request and returns the counters after it.
	call(ctx context.Context, op string) (stats, error)
	// close releases the group; its clients are stopped first if they
	// have not been.
	close()
}

// local is a group in this process.
type local struct{ r *runner }

func (l local) call(_ context.Context, op string) (stats, error) { return l.r.do(op) }
func (l local) close()                                           { l.r.stop() }

// remote is a group in a worker process.
type remote struct {
	n       int // the worker's number, for messages
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	replies chan workerReply // closed when the worker's output ends
	exited  chan struct{}    // closed once the process has been waited for
	waitErr error
}

// callTimeout bounds the wait for a worker's answer: a worker that does not
// answer in this time is stuck.
const callTimeout = 30 * time.Second

// startWorker starts worker n with argv and gives it its share.
func startWorker(n int, argv []string, stderr io.Writer, sh share) (*remote, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", n, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", n, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d (%s): %w", n, argv[0], err)
	}
	w := &remote{n: n, cmd: cmd, in: in, enc: json.NewEncoder(in),
		replies: make(chan workerReply, 1), exited: make(chan struct{})}
	go func() { // owned by the process: its output ends when it exits
		defer close(w.replies)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var rep workerReply
			if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
				rep = workerReply{Error: fmt.Sprintf("not an answer: %q", sc.Bytes())}
			}
			w.replies <- rep
		}
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()
	if err := w.enc.Encode(workerRequest{Op: opStart, Share: &sh}); err != nil {
		w.close()
		return nil, fmt.Errorf("worker %d: %w", n, err)
	}
	return w, nil
}

func (w *remote) call(ctx context.Context, op string) (stats, error) {
	if op != opStart { // start was sent with the share
		if err := w.enc.Encode(workerRequest{Op: op}); err != nil {
			return stats{}, fmt.Errorf("worker %d: %w", w.n, err)
		}
	}
	t := time.NewTimer(callTimeout)
	defer t.Stop()
	select {
	case rep, ok := <-w.replies:
		switch {
		case !ok:
			<-w.exited
			return stats{}, fmt.Errorf("worker %d exited: %v", w.n, w.waitErr)
		case rep.Error != "":
			return stats{}, fmt.Errorf("worker %d: %s", w.n, rep.Error)
		case rep.Stats == nil:
			return stats{}, fmt.Errorf("worker %d answered nothing", w.n)
		}
		return *rep.Stats, nil
	case <-t.C:
		return stats{}, fmt.Errorf("worker %d did not answer %s within %v", w.n, op, callTimeout)
	case <-ctx.Done():
		return stats{}, ctx.Err()
	}
}

// close ends the worker's input, which stops it, and waits for it to exit;
// if it does not in a few seconds, it is killed.
func (w *remote) close() {
	w.in.Close()
	go func() { // drain, so that the worker never blocks writing
		for range w.replies {
		}
	}()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-w.exited:
	case <-t.C:
		w.cmd.Process.Kill()
		<-w.exited
	}
}

// ServeWorker runs a worker: it reads the requests of a Run in another
// process from in, runs its share of the clients, and answers on out. It
// returns once asked to stop or once in ends (the parent is gone), after
// every client has closed. Canceling ctx stops it as well; a worker
// program should rather leave that to its parent, which hears of a Ctrl-C
// too and asks every worker for its figures before it stops them.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	reqs := make(chan workerRequest)
	readErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // ends when in does, or when ServeWorker returns
		dec := json.NewDecoder(in)
		for {
			var req workerRequest
			if err := dec.Decode(&req); err != nil {
				readErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	enc := json.NewEncoder(out)
	var r *runner
	defer func() {
		if r != nil {
			r.stop()
		}
	}()
	for {
		var req workerRequest
		select {
		case req = <-reqs:
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("bench worker: reading requests: %w", err)
		case <-ctx.Done():
			return nil
		}
		var rep workerReply
		switch {
		case r == nil && (req.Op != opStart || req.Share == nil):
			rep.Error = fmt.Sprintf("the first request must be a start with a share, not %q", req.Op)
		case r == nil:
			r = newRunner(*req.Share)
			fallthrough
		default:
			s, err := r.do(req.Op)
			if err != nil {
				rep.Error = err.Error()
			} else {
				rep.Stats = &s
			}
		}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("bench worker: answering: %w", err)
		}
		if req.Op == opStop {
			return nil
		}
	}
}
