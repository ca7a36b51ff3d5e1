// Package kernelclient talks to a Jupyter server's kernels the way the
// notebook front end does: it starts a kernel over the REST API and runs code
// with execute_request messages on the kernel's websocket.
package kernelclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Server is one Jupyter server, reached over HTTP.
type Server struct {
	// URL is the server's base URL, without the trailing slash, e.g.
	// http://hub/user/alice.
	URL string
	// Client sends the REST requests; nil means http.DefaultClient. Its
	// cookie jar and timeout apply.
	Client *http.Client
	// Header is added to every REST request: the token's Authorization, or
	// X-XSRFToken next to a session cookie in Client's jar.
	Header http.Header
}

// StartKernel starts a python3 kernel and returns its id.
func (s Server) StartKernel(ctx context.Context) (string, error) {
	status, body, err := s.do(ctx, http.MethodPost, "/api/kernels", []byte(`{"name":"python3"}`))
	if err != nil {
		return "", fmt.Errorf("create kernel: %w", err)
	}
	var k struct{ ID string }
	if err := json.Unmarshal(body, &k); err != nil || status != http.StatusCreated || k.ID == "" {
		return "", fmt.Errorf("create kernel: %d %s %v", status, body, err)
	}
	return k.ID, nil
}

// DeleteKernel shuts the kernel down.
func (s Server) DeleteKernel(ctx context.Context, id string) error {
	status, body, err := s.do(ctx, http.MethodDelete, "/api/kernels/"+id, nil)
	if err != nil {
		return fmt.Errorf("delete kernel %s: %w", id, err)
	}
	if status != http.StatusNoContent {
		return fmt.Errorf("delete kernel %s: %d %s", id, status, body)
	}
	return nil
}

// ChannelsURL is the websocket URL of the kernel's channels.
func (s Server) ChannelsURL(id string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/api/kernels/" + id + "/channels"
}

func (s Server) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range s.Header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// Dial opens the websocket at url (see ChannelsURL) with header, which
// carries the credentials (Authorization, or Cookie and Origin as a browser
// sends them), and waits until the kernel answers a kernel_info_request, as
// JupyterLab does before it sends a cell: a request sent the moment the
// websocket opens can be lost while the server still connects its ZMQ
// channels to a kernel that has just started. The read limit fits large
// outputs.
func Dial(ctx context.Context, url string, header http.Header) (*websocket.Conn, error) {
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("kernel websocket: %w (status %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("kernel websocket: %w", err)
	}
	conn.SetReadLimit(1 << 22)
	if err := handshake(ctx, conn); err != nil {
		conn.CloseNow()
		return nil, err
	}
	return conn, nil
}

// handshakeResend is how long handshake waits for a kernel_info_reply
// before it asks again.
const handshakeResend = 2 * time.Second

// handshake sends kernel_info_request, again every handshakeResend, until
// a reply names one of them. (The resends come from a goroutine: a Read
// whose context ends closes the websocket.)
func handshake(ctx context.Context, conn *websocket.Conn) error {
	session := randHex(8)
	var mu sync.Mutex
	sent := map[string]bool{}
	send := func(ctx context.Context) error {
		id := randHex(8)
		raw, err := json.Marshal(map[string]any{
			"header": map[string]any{"msg_id": id, "username": "", "session": session, "msg_type": "kernel_info_request",
				"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339)},
			"parent_header": map[string]any{}, "metadata": map[string]any{}, "content": map[string]any{},
			"channel": "shell", "buffers": []any{},
		})
		if err != nil {
			return err
		}
		mu.Lock()
		sent[id] = true
		mu.Unlock()
		return conn.Write(ctx, websocket.MessageText, raw)
	}
	if err := send(ctx); err != nil {
		return fmt.Errorf("sending kernel_info_request: %w", err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(handshakeResend)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if send(wctx) != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("waiting for kernel_info_reply: %w", err)
		}
		var m struct {
			MsgType      string `json:"msg_type"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
		}
		if json.Unmarshal(data, &m) != nil || m.MsgType != "kernel_info_reply" {
			continue
		}
		mu.Lock()
		ok := sent[m.ParentHeader.MsgID]
		mu.Unlock()
		if ok {
			return nil
		}
	}
}

// Request is one execution.
type Request struct {
	Code string
	// MsgID identifies the request; replies name it as their parent, so it
	// must be unique on the connection. Empty: a random id.
	MsgID string
	// Session and Username go into the message header; an empty Session is
	// random.
	Session  string
	Username string
}

// executeRequest is the execute_request for r, as the notebook front end sends it
// on the shell channel.
func executeRequest(r Request) ([]byte, error) {
	msg := map[string]any{
		"header": map[string]any{"msg_id": r.MsgID, "username": r.Username, "session": r.Session, "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339)},
		"parent_header": map[string]any{}, "metadata": map[string]any{}, "channel": "shell", "buffers": []any{},
		"content": map[string]any{"code": r.Code, "silent": false, "store_history": false, "user_expressions": map[string]any{},
			"allow_stdin": false, "stop_on_error": true},
	}
	return json.Marshal(msg)
}

// Error is an execution that the kernel reports as failed.
type Error struct {
	Status string // execute_reply status: "error" or "aborted"
	Name   string // exception name, e.g. NameError
	Value  string
}

func (e *Error) Error() string {
	if e.Status == "error" {
		return fmt.Sprintf("kernel error: %s: %s", e.Name, e.Value)
	}
	return fmt.Sprintf("execute_reply status %q", e.Status)
}

// Execute sends r on conn and reads the kernel's messages until both the
// execute_reply and the kernel's return to idle for r have arrived. It
// returns the text/plain results and the stream output (stdout, stderr) in
// the order they came; a failed execution returns the output so far and an
// *Error. Messages for other requests are skipped. ctx bounds the wait.
func Execute(ctx context.Context, conn *websocket.Conn, r Request) (string, error) {
	if r.MsgID == "" {
		r.MsgID = randHex(8)
	}
	if r.Session == "" {
		r.Session = randHex(8)
	}
	raw, err := executeRequest(r)
	if err != nil {
		return "", err
	}
	if err := conn.Write(ctx, websocket.MessageText, raw); err != nil {
		return "", fmt.Errorf("sending execute_request: %w", err)
	}
	var out strings.Builder
	var replied, idle bool
	var failed *Error
	for !replied || !idle {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return out.String(), fmt.Errorf("reading kernel messages: %w", err)
		}
		var m struct {
			MsgType      string `json:"msg_type"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Status         string         `json:"status"`
				ExecutionState string         `json:"execution_state"`
				Data           map[string]any `json:"data"`
				Text           string         `json:"text"`
				EName          string         `json:"ename"`
				EValue         string         `json:"evalue"`
			} `json:"content"`
		}
		if err := json.Unmarshal(data, &m); err != nil || m.ParentHeader.MsgID != r.MsgID {
			continue
		}
		c := m.Content
		switch m.MsgType {
		case "execute_reply":
			replied = true
			if c.Status != "ok" {
				failed = &Error{Status: c.Status, Name: c.EName, Value: c.EValue}
			}
		case "execute_result":
			if c.Data != nil {
				out.WriteString(fmt.Sprint(c.Data["text/plain"]))
			}
		case "stream":
			out.WriteString(c.Text)
		case "status":
			if c.ExecutionState == "idle" {
				idle = true
			}
		}
	}
	if failed != nil {
		return out.String(), failed
	}
	return out.String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
