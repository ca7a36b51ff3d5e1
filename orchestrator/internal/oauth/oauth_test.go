package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/oauth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/scopes"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testenv"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	ctx   context.Context
	st    *store.Store
	p     *oauth.Provider
	clk   *clock
	alice scopes.Set
}

const aliceSecret, bobSecret = "alice-server-token", "bob-server-token"

func setup(t *testing.T) fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	st := store.New(testenv.RedisClient(t), "test:")
	// Running jupyterhub-singleuser servers are the clients.
	for user, secret := range map[string]string{"alice": aliceSecret, "bob": bobSecret} {
		if err := st.PutServer(ctx, store.Server{User: user, State: store.StateRunning, Token: secret, HubToken: true}); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: time.Now()}
	return fixture{ctx: ctx, st: st, p: oauth.New(st, oauth.WithClock(clk.Now)), clk: clk,
		alice: scopes.Expand(scopes.Roles["user"], scopes.Owner{Name: "alice"})}
}

func aliceReq(state string) oauth.AuthorizeRequest {
	return oauth.AuthorizeRequest{ResponseType: "code", ClientID: "jupyterhub-user-alice",
		RedirectURI: "/user/alice/oauth_callback", State: state}
}

// authorize returns the code alice gets for her own server.
func (f fixture) authorize(t *testing.T) string {
	t.Helper()
	loc, err := f.p.Authorize(f.ctx, "alice", f.alice, aliceReq("xyz"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/user/alice/oauth_callback" || u.Query().Get("state") != "xyz" || u.Query().Get("code") == "" {
		t.Fatalf("redirect = %s", loc)
	}
	return u.Query().Get("code")
}

func form(code, id, secret, redirect string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {id},
		"client_secret": {secret}, "redirect_uri": {redirect}}
}

func aliceForm(code string) url.Values {
	return form(code, "jupyterhub-user-alice", aliceSecret, "/user/alice/oauth_callback")
}

func wantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) || oe.Status != status || oe.Code != code {
		t.Errorf("%s: err = %v, want %d %s", what, err, status, code)
	}
}

func TestRoundTrip(t *testing.T) {
	f := setup(t)
	resp, err := f.p.Token(f.ctx, aliceForm(f.authorize(t)), "", "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.TokenType != "Bearer" || resp.ExpiresIn != int64(oauth.DefaultTokenLifetime/time.Second) {
		t.Errorf("response = %+v", resp)
	}
	tok, err := f.st.LookupToken(f.ctx, resp.AccessToken)
	if err != nil || tok.User != "alice" {
		t.Fatalf("access token = %+v, %v", tok, err)
	}
	sc := tok.Scopes
	if !slices.Equal(sc, []string{"access:servers!server=alice/", "access:servers!user=alice"}) {
		t.Errorf("token scopes = %v", sc)
	}
	// The token, limited by alice's own scopes, reaches her server only.
	held := scopes.Intersect(scopes.Expand(sc, scopes.Owner{Name: "alice"}), f.alice, nil)
	if !scopes.Allows(held, "access:servers", scopes.Target{User: "alice", Server: "alice/"}) ||
		scopes.Allows(held, "access:servers", scopes.Target{User: "bob", Server: "bob/"}) ||
		scopes.Allows(held, "read:tokens", scopes.Target{User: "alice"}) {
		t.Errorf("access token grants %v", held.Strings())
	}
}

func TestBasicAuth(t *testing.T) {
	f := setup(t)
	fm := aliceForm(f.authorize(t))
	fm.Del("client_id")
	fm.Del("client_secret")
	if _, err := f.p.Token(f.ctx, fm, "jupyterhub-user-alice", aliceSecret); err != nil {
		t.Errorf("basic auth: %v", err)
	}
}

func TestMissingStateIsPassedThroughAsOauthlibDoes(t *testing.T) {
	f := setup(t)
	loc, err := f.p.Authorize(f.ctx, "alice", f.alice, aliceReq(""))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if _, has := u.Query()["state"]; has || u.Query().Get("code") == "" {
		t.Errorf("redirect without state = %s, want a code and no state", loc)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	f := setup(t)
	bad := aliceReq("s")
	bad.RedirectURI = "/user/alice/oauth_callback/"
	_, err := f.p.Authorize(f.ctx, "alice", f.alice, bad)
	wantErr(t, "wrong redirect_uri", err, http.StatusBadRequest, "invalid_request")

	bad = aliceReq("s")
	bad.RedirectURI = "https://evil.example/user/alice/oauth_callback"
	_, err = f.p.Authorize(f.ctx, "alice", f.alice, bad)
	wantErr(t, "foreign redirect_uri", err, http.StatusBadRequest, "invalid_request")

	bad = aliceReq("s")
	bad.ClientID = "jupyterhub-user-nobody"
	_, err = f.p.Authorize(f.ctx, "alice", f.alice, bad)
	wantErr(t, "unknown client", err, http.StatusBadRequest, "invalid_request")

	bobReq := aliceReq("s")
	bobReq.ClientID, bobReq.RedirectURI = "jupyterhub-user-bob", "/user/bob/oauth_callback"
	_, err = f.p.Authorize(f.ctx, "alice", f.alice, bobReq)
	wantErr(t, "another user's server", err, http.StatusForbidden, "access_denied")

	bad = aliceReq("s")
	bad.ResponseType = "token"
	loc, err := f.p.Authorize(f.ctx, "alice", f.alice, bad)
	if u, _ := url.Parse(loc); err != nil || u.Query().Get("error") != "unsupported_response_type" ||
		u.Query().Get("state") != "s" || u.Query().Get("code") != "" {
		t.Errorf("response_type=token: %s, %v", loc, err)
	}
}

func TestTokenRefusals(t *testing.T) {
	f := setup(t)

	code := f.authorize(t)
	_, err := f.p.Token(f.ctx, form(code, "jupyterhub-user-alice", "wrong", "/user/alice/oauth_callback"), "", "")
	wantErr(t, "bad secret", err, http.StatusUnauthorized, "invalid_client")
	_, err = f.p.Token(f.ctx, form(code, "jupyterhub-user-nobody", aliceSecret, "/user/alice/oauth_callback"), "", "")
	wantErr(t, "unknown client", err, http.StatusUnauthorized, "invalid_client")

	_, err = f.p.Token(f.ctx, form(code, "jupyterhub-user-alice", aliceSecret, "/user/alice/other"), "", "")
	wantErr(t, "wrong redirect_uri", err, http.StatusBadRequest, "invalid_request")

	_, err = f.p.Token(f.ctx, form(code, "jupyterhub-user-bob", bobSecret, "/user/bob/oauth_callback"), "", "")
	wantErr(t, "another client's code", err, http.StatusBadRequest, "invalid_grant")

	// None of the refusals used the code up.
	if _, err := f.p.Token(f.ctx, aliceForm(code), "", ""); err != nil {
		t.Fatalf("first redemption after refusals: %v", err)
	}
	_, err = f.p.Token(f.ctx, aliceForm(code), "", "")
	wantErr(t, "reused code", err, http.StatusBadRequest, "invalid_grant")

	_, err = f.p.Token(f.ctx, aliceForm("no-such-code"), "", "")
	wantErr(t, "unknown code", err, http.StatusBadRequest, "invalid_grant")

	fm := aliceForm(f.authorize(t))
	fm.Set("grant_type", "client_credentials")
	_, err = f.p.Token(f.ctx, fm, "", "")
	wantErr(t, "grant type", err, http.StatusBadRequest, "unsupported_grant_type")
	fm.Del("grant_type")
	_, err = f.p.Token(f.ctx, fm, "", "")
	wantErr(t, "no grant type", err, http.StatusBadRequest, "invalid_request")
	fm = aliceForm("")
	_, err = f.p.Token(f.ctx, fm, "", "")
	wantErr(t, "no code", err, http.StatusBadRequest, "invalid_request")
}

func TestCodeExpires(t *testing.T) {
	f := setup(t)
	fresh := f.authorize(t)
	stale := f.authorize(t)
	f.clk.Advance(oauth.CodeLifetime - time.Second)
	if _, err := f.p.Token(f.ctx, aliceForm(fresh), "", ""); err != nil {
		t.Fatalf("code just before expiry: %v", err)
	}
	f.clk.Advance(time.Second)
	_, err := f.p.Token(f.ctx, aliceForm(stale), "", "")
	wantErr(t, "expired code", err, http.StatusBadRequest, "invalid_grant")
}

// A running jupyterhub-singleuser server is a client by its record alone:
// its hub token is the secret while it runs, and refused once it stops.
func TestRunningServerIsAClient(t *testing.T) {
	f := setup(t)
	p := oauth.New(f.st, oauth.WithClock(f.clk.Now))
	const secret = "5e7c0ffee5e7c0ffee5e7c0ffee5e7c0ffee5e7c0ffee5e7c0ffee5e7c0ffee1"
	srv := store.Server{User: "carol", State: store.StateRunning, Token: secret, HubToken: true}
	if err := f.st.PutServer(f.ctx, srv); err != nil {
		t.Fatal(err)
	}
	carol := scopes.Expand(scopes.Roles["user"], scopes.Owner{Name: "carol"})
	req := oauth.AuthorizeRequest{ResponseType: "code", ClientID: "jupyterhub-user-carol",
		RedirectURI: "/user/carol/oauth_callback", State: "s"}
	codeFor := func() string {
		t.Helper()
		loc, err := p.Authorize(f.ctx, "carol", carol, req)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(loc)
		return u.Query().Get("code")
	}
	fm := form(codeFor(), "jupyterhub-user-carol", secret, "/user/carol/oauth_callback")
	if _, err := p.Token(f.ctx, fm, "", ""); err != nil {
		t.Fatalf("token for a running server: %v", err)
	}
	if _, err := p.Authorize(f.ctx, "alice", f.alice, req); err == nil {
		t.Error("alice was given a code for carol's server")
	}
	code := codeFor()
	srv.State = store.StateStopped
	if err := f.st.PutServer(f.ctx, srv); err != nil {
		t.Fatal(err)
	}
	_, err := p.Token(f.ctx, form(code, "jupyterhub-user-carol", secret, "/user/carol/oauth_callback"), "", "")
	wantErr(t, "stopped server's secret", err, http.StatusUnauthorized, "invalid_client")
	_, err = p.Authorize(f.ctx, "carol", carol, req)
	wantErr(t, "stopped server as client", err, http.StatusBadRequest, "invalid_request")
}
