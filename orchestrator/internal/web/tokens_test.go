package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Issue 3 item 6: API tokens for scripts. The proxy identifies requests with
// the same sessioncache.Cache (web.Server.Sessions), so what it answers here is
// what /user/NAME/ sees; the end-to-end test checks the proxy itself.

type createdToken struct {
	Token string `json:"token"`
	ID    string `json:"id"`
	Note  string `json:"note"`
	User  string `json:"user"`
}

func (c *client) createToken(user, note string) createdToken {
	c.t.Helper()
	resp, body := c.do("POST", "/hub/api/users/"+user+"/tokens", `{"note":"`+note+`"}`,
		map[string]string{"X-XSRFToken": c.xsrf, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("create token for %s: %d %s", user, resp.StatusCode, body)
	}
	var tok createdToken
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		c.t.Fatalf("create token: %v: %s", err, body)
	}
	return tok
}

// withToken calls the hub with only the token: no cookies, no xsrf.
func (e *env) withToken(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	resp, b := e.client(t).do(method, path, body, map[string]string{"Authorization": "token " + token, "Content-Type": "application/json"})
	return resp.StatusCode, b
}

// proxySees asks the session cache the proxy uses who sends token.
func (e *env) proxySees(token string) (string, bool) {
	r, _ := http.NewRequest("GET", "/user/alice/api/status", nil)
	r.Header.Set("Authorization", "token "+token)
	id, ok := e.srv.Sessions().Identify(r)
	return id.User, ok
}

func TestTokenIsShownOnceAndListedByID(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	tok := alice.createToken("alice", "grading script")
	if len(tok.Token) != 64 || tok.ID == "" || tok.User != "alice" || tok.Note != "grading script" {
		t.Fatalf("created token: %+v", tok)
	}
	resp, body := alice.do("GET", "/hub/api/users/alice/tokens", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list tokens: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, tok.Token) {
		t.Fatalf("the token list shows the token itself: %s", body)
	}
	var list struct {
		APITokens []map[string]any `json:"api_tokens"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.APITokens) != 1 || list.APITokens[0]["id"] != tok.ID || list.APITokens[0]["note"] != "grading script" {
		t.Fatalf("list must name the token by the id create returned (%q): %s", tok.ID, body)
	}
}

func TestTokenAuthenticatesWithoutCookieOrXSRF(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	tok := alice.createToken("alice", "")
	for _, scheme := range []string{"token ", "Bearer "} {
		resp, body := e.client(t).do("GET", "/hub/api/user", "", map[string]string{"Authorization": scheme + tok.Token})
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"name":"alice"`) {
			t.Fatalf("Authorization: %s<token>: %d %s", scheme, resp.StatusCode, body)
		}
	}
	// A state change needs no xsrf with a token: a browser cannot forge one.
	if code, body := e.withToken(t, "POST", "/hub/api/users/alice/server", tok.Token, ""); code != http.StatusAccepted {
		t.Fatalf("start own server with a token: %d %s", code, body)
	}
	for _, bad := range []string{"", "x", strings.Repeat("0", 64), tok.Token[:63] + "x"} {
		if code, _ := e.withToken(t, "GET", "/hub/api/user", bad, ""); code != http.StatusForbidden {
			t.Fatalf("token %q: want 403, got %d", bad, code)
		}
	}
}

func TestRevokedTokenIsRefusedAtOnce(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	keep := alice.createToken("alice", "keep")
	gone := alice.createToken("alice", "revoke me")
	// Used once, so the identity is cached for the proxy.
	if user, ok := e.proxySees(gone.Token); !ok || user != "alice" {
		t.Fatalf("proxy identity before revocation: %q %v", user, ok)
	}
	resp, body := alice.do("DELETE", "/hub/api/users/alice/tokens/"+gone.ID, "", map[string]string{"X-XSRFToken": alice.xsrf})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	if code, _ := e.withToken(t, "GET", "/hub/api/user", gone.Token, ""); code != http.StatusForbidden {
		t.Fatalf("revoked token on the hub: want 403, got %d", code)
	}
	if _, ok := e.proxySees(gone.Token); ok {
		t.Fatal("the proxy still accepts a revoked token")
	}
	if code, _ := e.withToken(t, "GET", "/hub/api/user", keep.Token, ""); code != http.StatusOK {
		t.Fatalf("the other token stopped working: %d", code)
	}
	_, body = alice.do("GET", "/hub/api/users/alice/tokens", "", nil)
	if strings.Contains(body, gone.ID) || !strings.Contains(body, keep.ID) {
		t.Fatalf("token list after revocation: %s", body)
	}
	resp, _ = alice.do("DELETE", "/hub/api/users/alice/tokens/"+gone.ID, "", map[string]string{"X-XSRFToken": alice.xsrf})
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking twice: want 404, got %d", resp.StatusCode)
	}
}

func TestAdminTokenReachesAdminEndpoints(t *testing.T) {
	e := newEnv(t)
	admin := e.client(t)
	admin.login("admin", testPassword)
	tok := admin.createToken("admin", "ops")
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/hub/api/users", "", http.StatusOK},
		{"GET", "/hub/api/users/bob", "", http.StatusOK},
		{"POST", "/hub/api/users", `{"usernames":["carol"]}`, http.StatusCreated},
		{"PATCH", "/hub/api/users/bob", `{"admin":false}`, http.StatusOK},
		{"GET", "/hub/api/events", "", http.StatusOK},
		{"POST", "/hub/api/users/bob/tokens", `{"note":"for bob"}`, http.StatusCreated},
		{"GET", "/hub/api/users/bob/tokens", "", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if code, body := e.withToken(t, tc.method, tc.path, tok.Token, tc.body); code != tc.want {
				t.Fatalf("want %d, got %d %s", tc.want, code, body)
			}
		})
	}
	if user, ok := e.proxySees(tok.Token); !ok || user != "admin" {
		t.Fatalf("proxy identity of the admin token: %q %v", user, ok)
	}
}

func TestStudentTokenReachesOnlyTheirOwn(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	tok := alice.createToken("alice", "")
	bobPlain, bobTok, err := e.st.CreateToken(context.Background(), "bob", "bob's")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/hub/api/users/alice", "", http.StatusOK},
		{"GET", "/hub/api/users/ALICE/tokens", "", http.StatusOK},
		{"GET", "/hub/api/users", "", http.StatusForbidden},
		{"GET", "/hub/api/users/bob", "", http.StatusForbidden},
		{"GET", "/hub/api/users/bob/tokens", "", http.StatusForbidden},
		{"POST", "/hub/api/users/bob/tokens", `{}`, http.StatusForbidden},
		{"DELETE", "/hub/api/users/bob/tokens/" + bobTok.ID, "", http.StatusForbidden},
		{"DELETE", "/hub/api/users/alice/tokens/" + bobTok.ID, "", http.StatusNotFound},
		{"PATCH", "/hub/api/users/alice", `{"admin":true}`, http.StatusForbidden},
		{"GET", "/hub/api/events", "", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			if code, body := e.withToken(t, tc.method, tc.path, tok.Token, tc.body); code != tc.want {
				t.Fatalf("want %d, got %d %s", tc.want, code, body)
			}
		})
	}
	if code, _ := e.withToken(t, "GET", "/hub/api/user", bobPlain, ""); code != http.StatusOK {
		t.Fatalf("bob's token stopped working after alice's attempts: %d", code)
	}
}

func TestBlockedUsersTokenStopsWorking(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	tok := alice.createToken("alice", "")
	if _, ok := e.proxySees(tok.Token); !ok {
		t.Fatal("token not accepted before the block")
	}
	admin := e.client(t)
	admin.login("admin", testPassword)
	resp, body := admin.do("PATCH", "/hub/api/users/alice", `{"blocked":true}`, map[string]string{"X-XSRFToken": admin.xsrf, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("block: %d %s", resp.StatusCode, body)
	}
	if code, _ := e.withToken(t, "GET", "/hub/api/user", tok.Token, ""); code != http.StatusForbidden {
		t.Fatalf("blocked user's token: want 403, got %d", code)
	}
	if _, ok := e.proxySees(tok.Token); ok {
		t.Fatal("the proxy still accepts a blocked user's token")
	}
}

// expires_in (seconds, JupyterHub's meaning) ends a token even while the
// proxy's identity cache still holds it; nonsense values are refused.
func TestTokenExpiresIn(t *testing.T) {
	e := newEnv(t)
	alice := e.client(t)
	alice.login("alice", testPassword)
	hdr := map[string]string{"X-XSRFToken": alice.xsrf, "Content-Type": "application/json"}
	for _, bad := range []string{`{"expires_in": -5}`, `{"expires_in": 1000000000000}`, `{"expires_in": "soon"}`} {
		resp, body := alice.do("POST", "/hub/api/users/alice/tokens", bad, hdr)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expires_in") {
			t.Errorf("%s: %d %s, want 400 naming expires_in", bad, resp.StatusCode, body)
		}
	}
	resp, body := alice.do("POST", "/hub/api/users/alice/tokens", `{"note": "short", "expires_in": 1}`, hdr)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var tok struct {
		Token     string  `json:"token"`
		ExpiresAt *string `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.ExpiresAt == nil {
		t.Fatalf("created token has no expires_at: %s", body)
	}
	if user, ok := e.proxySees(tok.Token); !ok || user != "alice" {
		t.Fatalf("fresh token: proxy sees %q %v", user, ok)
	}
	if code, body := e.withToken(t, "GET", "/hub/api/users/alice", tok.Token, ""); code != http.StatusOK {
		t.Fatalf("fresh token on the API: %d %s", code, body)
	}
	time.Sleep(1100 * time.Millisecond) // let the one-second token run out
	if user, ok := e.proxySees(tok.Token); ok {
		t.Errorf("expired token still identifies %q to the proxy", user)
	}
	if code, _ := e.withToken(t, "GET", "/hub/api/users/alice", tok.Token, ""); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("expired token on the API: %d, want 401 or 403", code)
	}
	resp, body = alice.do("GET", "/hub/api/users/alice/tokens", "", nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `"short"`) {
		t.Errorf("expired token still listed: %d %s", resp.StatusCode, body)
	}
}
