package oauth

import (
	"maps"
	"testing"
)

func TestSingleUserEnv(t *testing.T) {
	got := SingleUserEnv(SingleUser{User: "ann.o'neil@x", APIToken: "tok", HubAPIURL: "http://orchestrator:8000/hub/api/",
		BindURL: "http://0.0.0.0:8888", AllowedScopes: []string{"read:users!user=ann.o'neil@x"}, AdminAccess: true})
	want := map[string]string{
		"JUPYTERHUB_API_TOKEN":                   "tok",
		"JPY_API_TOKEN":                          "tok",
		"JUPYTERHUB_ADMIN_ACCESS":                "1",
		"JUPYTERHUB_CLIENT_ID":                   "jupyterhub-user-ann.o%27neil%40x",
		"JUPYTERHUB_HOST":                        "",
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          "/user/ann.o%27neil@x/oauth_callback",
		"JUPYTERHUB_OAUTH_SCOPES":                `["access:servers!server=ann.o'neil@x/", "access:servers!user=ann.o'neil@x"]`,
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         `["access:servers!server=ann.o'neil@x/", "access:servers!user=ann.o'neil@x"]`,
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": `["access:servers!server=ann.o'neil@x/", "access:servers!user=ann.o'neil@x", "read:users!user=ann.o'neil@x"]`,
		"JUPYTERHUB_USER":                        "ann.o'neil@x",
		"JUPYTERHUB_SERVER_NAME":                 "",
		"JUPYTERHUB_API_URL":                     "http://orchestrator:8000/hub/api",
		"JUPYTERHUB_ACTIVITY_URL":                "http://orchestrator:8000/hub/api/users/ann.o%27neil@x/activity",
		"JUPYTERHUB_BASE_URL":                    "/",
		"JUPYTERHUB_SERVICE_PREFIX":              "/user/ann.o%27neil@x/",
		"JUPYTERHUB_SERVICE_URL":                 "http://0.0.0.0:8888/user/ann.o%27neil@x/",
	}
	if !maps.Equal(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("unexpected %s", k)
			}
		}
	}
	named := SingleUserEnv(SingleUser{User: "bob", Server: "gpu", BaseURL: "/hub-base/", HubAPIURL: "http://h/hub-base/hub/api"})
	if named["JUPYTERHUB_CLIENT_ID"] != "jupyterhub-user-bob-gpu" ||
		named["JUPYTERHUB_OAUTH_CALLBACK_URL"] != "/hub-base/user/bob/gpu/oauth_callback" ||
		named["JUPYTERHUB_SERVICE_PREFIX"] != "/hub-base/user/bob/gpu/" ||
		named["JUPYTERHUB_OAUTH_ACCESS_SCOPES"] != `["access:servers!server=bob/gpu", "access:servers!user=bob"]` ||
		named["JUPYTERHUB_BASE_URL"] != "/hub-base/" || named["JUPYTERHUB_SERVER_NAME"] != "gpu" {
		t.Errorf("named server env = %v", named)
	}
	if _, ok := named["JUPYTERHUB_ADMIN_ACCESS"]; ok {
		t.Errorf("JUPYTERHUB_ADMIN_ACCESS set without admin access")
	}
}
