package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pulsehq/pulse"
)

// ErrUnreachable is wrapped by the errors of a Client that could not get an
// answer from the API at all: nothing listens there, or it is not pulse.
var ErrUnreachable = errors.New("cannot reach the pulse HTTP API")

// Client talks to the HTTP API of a pulse server. Its methods return an
// *Error for an error answer of the API, and an error wrapping
// ErrUnreachable when there was no answer.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string // sent as a bearer token, if set
}

// SetToken makes the client send token as "Authorization: Bearer <token>"
// with every request; "" sends none. Call it before the client is used.
func (c *Client) SetToken(token string) { c.token = token }

// authorize adds the bearer token, if any, to req.
func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// NewClient returns a client of the API at addr: "host:port" or a URL such
// as "http://host:port" or "https://host:port". hc nil means
// http.DefaultClient; for https with a private CA or a client certificate,
// give one whose Transport has the TLSClientConfig.
func NewClient(addr string, hc *http.Client) (*Client, error) {
	if addr == "" {
		return nil, errors.New("httpapi: no API address")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpapi: %q is not an API address: want host:port, http://host:port or https://host:port", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, hc: hc}, nil
}

// Base returns the API's base URL.
func (c *Client) Base() string { return c.base.String() }

// ListOptions select sessions; the zero value selects every live one.
type ListOptions struct {
	State  pulse.State // alive or suspect; zero means any
	Prefix string      // names that start with it
	Limit  int         // per page; zero means the API's default
	Cursor string      // NextCursor of the previous page
	Names  []string    // exactly these sessions, in one page (no Limit or Cursor)
}

// Sessions returns one page of sessions.
func (c *Client) Sessions(ctx context.Context, o ListOptions) (SessionList, error) {
	q := url.Values{}
	if o.State != 0 {
		q.Set("state", o.State.String())
	}
	if o.Prefix != "" {
		q.Set("name", o.Prefix)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if len(o.Names) > 0 {
		q.Set("names", strings.Join(o.Names, ","))
	}
	var list SessionList
	err := c.do(ctx, http.MethodGet, "/v1/sessions", q, &list)
	return list, err
}

// AllSessions follows the pages of o to the end and returns every session,
// with the counts of the first page.
func (c *Client) AllSessions(ctx context.Context, o ListOptions) ([]Session, Counts, error) {
	var all []Session
	var counts Counts
	for first := true; ; first = false {
		page, err := c.Sessions(ctx, o)
		if err != nil {
			return nil, Counts{}, err
		}
		if first {
			counts = page.Counts
		}
		all = append(all, page.Sessions...)
		if page.NextCursor == "" {
			return all, counts, nil
		}
		o.Cursor = page.NextCursor
	}
}

// Session returns the named session.
func (c *Client) Session(ctx context.Context, name string) (Session, error) {
	var s Session
	err := c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(name), nil, &s)
	return s, err
}

// Kick removes the named session and returns it as it was; its client gets
// "ERR kicked <reason>".
func (c *Client) Kick(ctx context.Context, name, reason string) (Session, error) {
	var q url.Values
	if reason != "" {
		q = url.Values{"reason": {reason}}
	}
	var s Session
	err := c.do(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(name), q, &s)
	return s, err
}

// Cluster returns what GET /v1/cluster answers: the node that answered,
// the nodes of its cluster, and the state of their store ("ok",
// "unreachable" while the node answers from what it last knew, or "none"
// on a single server).
func (c *Client) Cluster(ctx context.Context) (Cluster, error) {
	var cl Cluster
	err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &cl)
	return cl, err
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), nil)
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.unreachable(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return c.unreachable(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return c.errorAnswer(resp, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w at %s: the answer to %s %s is not pulse's JSON: %v", ErrUnreachable, c.base, method, path, err)
	}
	return nil
}

func (c *Client) unreachable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("httpapi: %w", ctx.Err())
	}
	return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.base, err)
}

// errorAnswer decodes an error answer; one that is not the API's JSON means
// something else listens there.
func (c *Client) errorAnswer(resp *http.Response, body []byte) error {
	var e struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Code == "" {
		if resp.StatusCode == http.StatusBadRequest && bytes.Contains(body, []byte("HTTP request to an HTTPS server")) {
			return fmt.Errorf("%w at %s: the server speaks https there: use an https:// address", ErrUnreachable, c.base)
		}
		return fmt.Errorf("%w at %s: HTTP %s from something that is not pulse's API", ErrUnreachable, c.base, resp.Status)
	}
	e.Error.Status = resp.StatusCode
	return e.Error
}

// Message is one message of an event stream.
type Message struct {
	// Type is "event" for a session event, "ready" when the stream starts
	// where asked, "reset" when it could not resume and starts now.
	Type string
	// ID is the message's event ID: give it to Events to resume after it.
	ID string
	// Event is the session event, when Type is "event".
	Event Event
	// Reason says why a reset happened.
	Reason string
}

// Events streams session events to fn, starting after the event lastID
// ("" for from now on), until ctx ends, fn returns an error, or the stream
// ends. It returns nil only when the server ended the stream (shutting
// down, or dropping a reader that fell behind): resume from the last ID.
func (c *Client) Events(ctx context.Context, lastID string, fn func(Message) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/events", nil), nil)
	if err != nil {
		return fmt.Errorf("httpapi: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	c.authorize(req)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.unreachable(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return c.errorAnswer(resp, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("%w at %s: /v1/events answered %q, not an event stream", ErrUnreachable, c.base, ct)
	}
	err = readSSE(resp.Body, func(typ, id string, data []byte) error {
		m := Message{Type: typ, ID: id}
		switch typ {
		case "message":
			m.Type = "event"
			if err := json.Unmarshal(data, &m.Event); err != nil {
				return fmt.Errorf("httpapi: bad event %s: %w", id, err)
			}
		case "reset":
			var r struct{ Reason string }
			_ = json.Unmarshal(data, &r)
			m.Reason = r.Reason
		case "ready":
		default:
			return nil // a type this client does not know: skip it
		}
		return fn(m)
	})
	if ctx.Err() != nil {
		return fmt.Errorf("httpapi: %w", ctx.Err())
	}
	return err
}

// maxSSELine bounds one line of an event stream.
const maxSSELine = 1 << 20

// readSSE parses an event stream (the WHATWG format) and calls fn for each
// message with its type, last event ID and data.
func readSSE(r io.Reader, fn func(typ, id string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxSSELine)
	var (
		typ, id string
		data    bytes.Buffer
		hasData bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 { // dispatch
			if hasData {
				if typ == "" {
					typ = "message"
				}
				if err := fn(typ, id, bytes.TrimSuffix(data.Bytes(), []byte("\n"))); err != nil {
					return err
				}
			}
			typ, hasData = "", false
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			id = string(value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("httpapi: reading the event stream: %w", err)
	}
	return nil
}
