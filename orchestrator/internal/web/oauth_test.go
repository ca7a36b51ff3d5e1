package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/swarmhub/swarmhub/orchestrator/internal/oauth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/web"
)

// Issue 12: jupyterhub-singleuser's OAuth round trip through the hub's
// HTTP stack, against real Redis.

const (
	aliceClientSecret = "alice-server-api-token"
	bobClientSecret   = "bob-server-api-token"
)

func newOAuthEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, func(_ *web.Options, d *web.Deps) {
		d.OAuth = oauth.New(d.Store.(*store.Store))
	})
	// Running jupyterhub-singleuser servers are the clients.
	for user, secret := range map[string]string{"alice": aliceClientSecret, "bob": bobClientSecret} {
		srv := store.Server{User: user, State: store.StateRunning, Token: secret, HubToken: true}
		if err := e.st.PutServer(context.Background(), srv); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func authorizePath(user, redirect string) string {
	return "/hub/api/oauth2/authorize?" + url.Values{"response_type": {"code"}, "client_id": {oauth.ClientID(user, "")},
		"redirect_uri": {redirect}, "state": {"st4te"}}.Encode()
}

// authorize asks for a code for user's server as c and returns the answer.
func (c *client) authorize(user, redirect string) *http.Response {
	c.t.Helper()
	resp, _ := c.do("GET", authorizePath(user, redirect), "", nil)
	return resp
}

// codeFrom reads the code from an authorize redirect.
func codeFrom(t *testing.T, resp *http.Response) string {
	t.Helper()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != "/user/alice/oauth_callback" || loc.Query().Get("state") != "st4te" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize redirects to %q", resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

// exchange posts a token request; basic sends the credentials by HTTP Basic.
func (e *env) exchange(t *testing.T, form url.Values, basicID, basicSecret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.ts.URL+"/hub/api/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(basicID, basicSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	return resp.StatusCode, body
}

func codeForm(code, redirect, id, secret string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	if id != "" {
		f.Set("client_id", id)
		f.Set("client_secret", secret)
	}
	return f
}

func TestOAuthCodeFlowGivesAScopedToken(t *testing.T) {
	e := newOAuthEnv(t)
	redirect := oauth.RedirectURI("/", "alice", "")

	anon := e.client(t)
	resp := anon.authorize("alice", redirect)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound ||
		loc != "/hub/login?next="+url.QueryEscape(authorizePath("alice", redirect)) {
		t.Fatalf("anonymous authorize: %d to %q, want the login form with next", resp.StatusCode, loc)
	}

	// The login form sends her back to authorize.
	_, page := anon.do("GET", "/hub/login?next="+url.QueryEscape(authorizePath("alice", redirect)), "", nil)
	m := formXSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no _xsrf in the login form: %s", page)
	}
	form := url.Values{"username": {"alice"}, "password": {testPassword}, "_xsrf": {m[1]}, "next": {authorizePath("alice", redirect)}}
	resp, _ = anon.do("POST", "/hub/login", form.Encode(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != authorizePath("alice", redirect) {
		t.Fatalf("login with next: %d to %q, want back to authorize", resp.StatusCode, loc)
	}
	codeFrom(t, anon.authorize("alice", redirect))

	alice := e.client(t)
	alice.login("alice", testPassword)
	code := codeFrom(t, alice.authorize("alice", redirect))

	status, tok := e.exchange(t, codeForm(code, redirect, oauth.ClientID("alice", ""), aliceClientSecret), "", "")
	if status != http.StatusOK || tok["token_type"] != "Bearer" || tok["access_token"] == "" {
		t.Fatalf("token: %d %v", status, tok)
	}
	access, _ := tok["access_token"].(string)
	st, body := e.withToken(t, "GET", "/hub/api/user", access, "")
	var me struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(body), &me); st != http.StatusOK || err != nil {
		t.Fatalf("GET /hub/api/user with the access token: %d %s", st, body)
	}
	if me.Name != "alice" || !slices.Contains(me.Scopes, "access:servers!user=alice") {
		t.Errorf("user = %+v, want alice with access:servers!user=alice", me)
	}
	// The access token is limited to the server: not alice's tokens.
	if st, body := e.withToken(t, "GET", "/hub/api/users/alice/tokens", access, ""); st != http.StatusForbidden {
		t.Errorf("access token lists alice's tokens: %d %s", st, body)
	}

	if status, body := e.exchange(t, codeForm(code, redirect, oauth.ClientID("alice", ""), aliceClientSecret), "", ""); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reused code: %d %v, want 400 invalid_grant", status, body)
	}
}

func TestOAuthRefusals(t *testing.T) {
	e := newOAuthEnv(t)
	redirect := oauth.RedirectURI("/", "alice", "")
	alice := e.client(t)
	alice.login("alice", testPassword)

	if resp := alice.authorize("alice", "/user/alice/elsewhere"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("authorize with a foreign redirect_uri: %d, want 400", resp.StatusCode)
	}
	if resp := alice.authorize("bob", oauth.RedirectURI("/", "bob", "")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("alice authorizes bob's server: %d, want 403", resp.StatusCode)
	}

	code := codeFrom(t, alice.authorize("alice", redirect))
	for _, tt := range []struct {
		name             string
		form             url.Values
		basicID, basicPW string
		status           int
		errCode          string
	}{
		{"bad secret", codeForm(code, redirect, oauth.ClientID("alice", ""), "wrong"), "", "", http.StatusUnauthorized, "invalid_client"},
		{"bad secret by Basic", codeForm(code, redirect, "", ""), oauth.ClientID("alice", ""), "wrong", http.StatusUnauthorized, "invalid_client"},
		{"another client's code", codeForm(code, oauth.RedirectURI("/", "bob", ""), oauth.ClientID("bob", ""), bobClientSecret), "", "", http.StatusBadRequest, "invalid_grant"},
		{"wrong redirect_uri", codeForm(code, "/user/alice/elsewhere", oauth.ClientID("alice", ""), aliceClientSecret), "", "", http.StatusBadRequest, "invalid_request"},
		{"no grant type", url.Values{"code": {code}}, oauth.ClientID("alice", ""), aliceClientSecret, http.StatusBadRequest, "invalid_request"},
	} {
		if status, body := e.exchange(t, tt.form, tt.basicID, tt.basicPW); status != tt.status || body["error"] != tt.errCode {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, body, tt.status, tt.errCode)
		}
	}
	// None of the refusals used the code up; Basic credentials work.
	if status, body := e.exchange(t, codeForm(code, redirect, "", ""), oauth.ClientID("alice", ""), aliceClientSecret); status != http.StatusOK {
		t.Errorf("exchange after refusals, by Basic: %d %v", status, body)
	}
}
