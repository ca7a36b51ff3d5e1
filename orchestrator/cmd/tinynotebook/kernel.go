package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// kernelSet is the server's kernels: ids only, as every kernel evaluates the
// same way and keeps no state.
type kernelSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (k *kernelSet) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ids)
}

func (k *kernelSet) has(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ids[id]
}

// routes adds the Jupyter kernel endpoints a first cell needs: create,
// delete, and the channels websocket.
func (k *kernelSet) routes(mux *http.ServeMux, base string, authorized func(*http.Request) bool, touch func()) {
	mux.HandleFunc("POST "+base+"api/kernels", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id := hex.EncodeToString(b)
		k.mu.Lock()
		if k.ids == nil {
			k.ids = map[string]bool{}
		}
		k.ids[id] = true
		k.mu.Unlock()
		touch()
		writeJSON(w, http.StatusCreated, map[string]string{"id": id, "name": "tiny", "execution_state": "idle"})
	})
	mux.HandleFunc("DELETE "+base+"api/kernels/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		}
		k.mu.Lock()
		found := k.ids[r.PathValue("id")]
		delete(k.ids, r.PathValue("id"))
		k.mu.Unlock()
		if !found {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "no such kernel"})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+base+"api/kernels/{id}/channels", func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Forbidden"})
			return
		}
		if !k.has(r.PathValue("id")) {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "no such kernel"})
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			touch()
			for _, reply := range answer(data) {
				if err := c.Write(ctx, websocket.MessageText, reply); err != nil {
					return
				}
			}
		}
	})
}

// kernelMsg is the part of a Jupyter message (websocket JSON form) the
// kernel reads and writes.
type kernelMsg struct {
	Header       map[string]any `json:"header"`
	ParentHeader map[string]any `json:"parent_header"`
	Metadata     map[string]any `json:"metadata"`
	Content      map[string]any `json:"content"`
	Channel      string         `json:"channel"`
	MsgType      string         `json:"msg_type"`
	Buffers      []any          `json:"buffers"`
}

// answer is the kernel's reply to one message: for an execute_request, the
// messages a Jupyter kernel sends (busy, the result, the reply, idle); for
// a kernel_info_request (which clients send before their first cell) a
// kernel_info_reply; other messages get none.
func answer(data []byte) [][]byte {
	var req kernelMsg
	if json.Unmarshal(data, &req) != nil {
		return nil
	}
	typ := req.Header["msg_type"]
	if typ != "execute_request" && typ != "kernel_info_request" {
		return nil
	}
	msg := func(channel, typ string, content map[string]any) []byte {
		b, _ := json.Marshal(kernelMsg{
			Header: map[string]any{"msg_id": newID(), "msg_type": typ, "session": req.Header["session"],
				"username": req.Header["username"], "version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano)},
			ParentHeader: req.Header, Metadata: map[string]any{}, Content: content,
			Channel: channel, MsgType: typ, Buffers: []any{},
		})
		return b
	}
	out := [][]byte{msg("iopub", "status", map[string]any{"execution_state": "busy"})}
	if typ == "kernel_info_request" {
		out = append(out, msg("shell", "kernel_info_reply", map[string]any{"status": "ok", "protocol_version": "5.3",
			"implementation": "tinynotebook", "language_info": map[string]any{"name": "sums"}}))
		return append(out, msg("iopub", "status", map[string]any{"execution_state": "idle"}))
	}
	code, _ := req.Content["code"].(string)
	sum, ok := evalSum(code)
	if ok {
		out = append(out,
			msg("iopub", "execute_result", map[string]any{"execution_count": 1,
				"data": map[string]any{"text/plain": strconv.FormatInt(sum, 10)}, "metadata": map[string]any{}}),
			msg("shell", "execute_reply", map[string]any{"status": "ok", "execution_count": 1}))
	} else {
		out = append(out, msg("shell", "execute_reply", map[string]any{"status": "error", "execution_count": 1,
			"ename": "NotImplementedError", "evalue": "tinynotebook evaluates sums of integers only", "traceback": []any{}}))
	}
	return append(out, msg("iopub", "status", map[string]any{"execution_state": "idle"}))
}

// evalSum evaluates code of the form "1+1" or "2 + 3 + 4".
func evalSum(code string) (int64, bool) {
	var sum int64
	for _, term := range strings.Split(code, "+") {
		n, err := strconv.ParseInt(strings.TrimSpace(term), 10, 64)
		if err != nil {
			return 0, false
		}
		sum += n
	}
	return sum, true
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
