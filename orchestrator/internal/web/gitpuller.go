package web

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

// gitpullerForm is the nbgitpuller link builder's input and result. Errors
// are per field, so the page shows each next to its input.
type gitpullerForm struct {
	Repo    string            `json:"repo"`
	Branch  string            `json:"branch"`
	URLPath string            `json:"urlpath"`
	Link    string            `json:"link,omitempty"`
	Errors  map[string]string `json:"errors,omitempty"`
}

// buildGitpuller validates the fields and builds
// PUBLIC_URL/hub/user-redirect/git-pull?repo=...&branch=...&urlpath=...
func buildGitpuller(public, repo, branch, urlpath string) gitpullerForm {
	f := gitpullerForm{Repo: strings.TrimSpace(repo), Branch: strings.TrimSpace(branch), URLPath: strings.TrimSpace(urlpath), Errors: map[string]string{}}
	if msg := checkRepo(f.Repo); msg != "" {
		f.Errors["repo"] = msg
	}
	if msg := checkBranch(f.Branch); msg != "" {
		f.Errors["branch"] = msg
	}
	if f.URLPath == "" && f.Errors["repo"] == "" {
		// nbgitpuller clones into a directory named after the repository.
		u, _ := url.Parse(f.Repo)
		f.URLPath = "tree/" + strings.TrimSuffix(path.Base(strings.TrimSuffix(u.Path, "/")), ".git") + "/"
	}
	// An empty path is only an error once the repository is valid (it
	// names the default); the repository's own error says what to do.
	if msg := checkURLPath(f.URLPath); msg != "" && (f.URLPath != "" || f.Errors["repo"] == "") {
		f.Errors["urlpath"] = msg
	}
	if len(f.Errors) > 0 {
		return f
	}
	q := url.Values{}
	q.Set("repo", f.Repo)
	if f.Branch != "" {
		q.Set("branch", f.Branch)
	}
	q.Set("urlpath", f.URLPath)
	// url.Values sorts keys: branch, repo, urlpath. nbgitpuller does not care.
	f.Link = strings.TrimSuffix(public, "/") + "/hub/user-redirect/git-pull?" + q.Encode()
	f.Errors = nil
	return f
}

func checkRepo(repo string) string {
	if repo == "" {
		return "Enter the repository's URL, e.g. https://github.com/org/course-material"
	}
	if len(repo) > 2048 {
		return "The URL is longer than 2048 characters."
	}
	u, err := url.Parse(repo)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "Use an https:// (or http://) URL of a git repository, e.g. https://github.com/org/course-material"
	}
	if u.User != nil {
		return "Do not put credentials in the URL: every student would see them. Use a public repository."
	}
	if u.Path == "" || u.Path == "/" {
		return "The URL names a server but no repository; add the repository's path."
	}
	if u.Fragment != "" || u.RawQuery != "" {
		return "Remove the ?query or #fragment: git clones the plain repository URL."
	}
	return ""
}

// checkBranch follows git check-ref-format for a branch name; empty means
// the repository's default branch.
func checkBranch(b string) string {
	if b == "" {
		return ""
	}
	bad := "Not a valid git branch name: "
	switch {
	case len(b) > 255:
		return bad + "longer than 255 characters."
	case strings.HasPrefix(b, "-"), strings.HasPrefix(b, "/"), strings.HasSuffix(b, "/"), strings.HasSuffix(b, "."):
		return bad + "it may not start with - or /, nor end with / or ."
	case strings.HasSuffix(b, ".lock"):
		return bad + "it may not end with .lock"
	case strings.Contains(b, ".."), strings.Contains(b, "//"), strings.Contains(b, "@{"), b == "@":
		return bad + `it may not contain "..", "//" or "@{".`
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return bad + `spaces and the characters ~ ^ : ? * [ \ are not allowed.`
		}
	}
	for _, part := range strings.Split(b, "/") {
		if strings.HasPrefix(part, ".") {
			return bad + "no part may start with a dot."
		}
	}
	return ""
}

// checkURLPath accepts a path inside the student's server, relative to
// /user/NAME/, such as tree/REPO/ or lab/tree/REPO/notebook.ipynb.
func checkURLPath(p string) string {
	if p == "" {
		return "Enter where to open the files, e.g. tree/course-material/"
	}
	if len(p) > 1024 {
		return "The path is longer than 1024 characters."
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "://") || strings.HasPrefix(p, "user/") {
		return "Give a path relative to the student's server, like tree/REPO/ or lab/tree/REPO/index.ipynb (no leading /, no host)."
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return "The path contains control characters or a backslash."
		}
	}
	for _, seg := range strings.Split(strings.SplitN(p, "?", 2)[0], "/") {
		if seg == ".." || seg == "." {
			return "The path may not contain . or .. segments."
		}
	}
	return ""
}

func (s *Server) publicURL(c echo.Context) string {
	if s.o.PublicURL != "" {
		return s.o.PublicURL
	}
	return c.Scheme() + "://" + c.Request().Host
}

// gitpullerPage builds a link from query parameters (a GET form: nothing
// changes, so no CSRF token is needed and the result can be bookmarked).
func (s *Server) gitpullerPage(c echo.Context) error {
	id, _ := identityOf(c)
	data := map[string]any{"XSRF": id.XSRF, "Public": s.publicURL(c)}
	if c.QueryParam("repo") != "" || c.QueryParam("submitted") != "" {
		data["Form"] = buildGitpuller(s.publicURL(c), c.QueryParam("repo"), c.QueryParam("branch"), c.QueryParam("urlpath"))
	} else {
		data["Form"] = gitpullerForm{}
	}
	return s.render(c, http.StatusOK, "gitpuller.html", data)
}

// apiGitpullerLink is the same builder for scripts: 200 with the link, or
// 400 with the field errors.
func (s *Server) apiGitpullerLink(c echo.Context) error {
	f := buildGitpuller(s.publicURL(c), c.QueryParam("repo"), c.QueryParam("branch"), c.QueryParam("urlpath"))
	if len(f.Errors) > 0 {
		msgs := make([]string, 0, len(f.Errors))
		for _, k := range []string{"repo", "branch", "urlpath"} {
			if m := f.Errors[k]; m != "" {
				msgs = append(msgs, k+": "+m)
			}
		}
		return c.JSON(http.StatusBadRequest, map[string]any{"status": 400, "message": strings.Join(msgs, "; "), "errors": f.Errors})
	}
	return c.JSON(http.StatusOK, f)
}
