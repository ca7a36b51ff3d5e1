package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/swarmhub/swarmhub/orchestrator/internal/identity"
)

// LDAPOptions mirrors the auth.ldap section of the configuration; the names
// follow JupyterHub's LDAPAuthenticator where it has the same option.
type LDAPOptions struct {
	ServerAddress string
	ServerPort    int    // default 636 for ldaps, 389 otherwise
	TLS           string // "ldaps", "starttls" or "none"
	CAFile        string // PEM bundle; empty: the system roots
	// InsecureSkipVerify turns certificate verification off. Never in
	// production; logged as an error at every start.
	InsecureSkipVerify bool
	ServerName         string // name the certificate must carry; default ServerAddress

	// BindDNTemplates are tried in order with {username} replaced by the
	// RFC 4514-escaped login name; the first successful bind wins.
	BindDNTemplates []string

	// LookupDN: search for the user with the service account (BindDN,
	// BindPassword; anonymous when BindDN is empty) under UserSearchBase by
	// UserAttribute (and SearchFilter), then bind as the one entry found.
	LookupDN       bool
	BindDN         string
	BindPassword   string
	UserSearchBase string
	UserAttribute  string // default "uid"; "sAMAccountName" for Active Directory
	SearchFilter   string // extra filter ANDed to the lookup, e.g. "(objectClass=person)"
	// LookupDNUserDNAttribute takes the username from this attribute of the
	// entry found (then canonicalised) instead of from what was typed.
	LookupDNUserDNAttribute string

	// AllowedGroups are group DNs; Result.Groups lists those the user is in.
	// Membership is searched in each group (scope base), or with one subtree
	// search under GroupSearchBase when that is set.
	AllowedGroups         []string
	GroupSearchBase       string
	GroupMemberAttributes []string // default member, uniqueMember, memberUid

	DialTimeout      time.Duration // TCP connect and TLS handshake; default 5s
	OperationTimeout time.Duration // each LDAP request; default 10s
}

type ldapAuth struct {
	o       LDAPOptions
	addr    string
	tls     *tls.Config // nil for TLS "none"
	allowed []*ldap.DN
	namer   Namer
	log     *slog.Logger
}

// NewLDAP validates the options and returns an LDAP authenticator. It does
// not contact the directory; call Check for that.
func NewLDAP(o LDAPOptions, namer Namer, log *slog.Logger) (Authenticator, error) {
	if namer == nil || log == nil {
		return nil, errors.New("auth.ldap: namer and logger are required")
	}
	if strings.TrimSpace(o.ServerAddress) == "" {
		return nil, errors.New("auth.ldap.server_address is required")
	}
	switch o.TLS {
	case "ldaps":
		if o.ServerPort == 0 {
			o.ServerPort = 636
		}
	case "starttls", "none":
		if o.ServerPort == 0 {
			o.ServerPort = 389
		}
	default:
		return nil, fmt.Errorf("auth.ldap.tls is %q: must be ldaps, starttls or none", o.TLS)
	}
	if o.ServerPort < 1 || o.ServerPort > 65535 {
		return nil, fmt.Errorf("auth.ldap.server_port %d is not a TCP port", o.ServerPort)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = 10 * time.Second
	}
	if o.UserAttribute == "" {
		o.UserAttribute = "uid"
	}
	if len(o.GroupMemberAttributes) == 0 {
		o.GroupMemberAttributes = []string{"member", "uniqueMember", "memberUid"}
	}
	if o.SearchFilter != "" && !strings.HasPrefix(o.SearchFilter, "(") {
		o.SearchFilter = "(" + o.SearchFilter + ")"
	}
	if o.BindDN != "" && o.BindPassword == "" {
		// An empty password would make the service bind an unauthenticated one.
		return nil, errors.New("auth.ldap.bind_password is empty while bind_dn is set")
	}

	if o.LookupDN {
		if o.UserSearchBase == "" {
			return nil, errors.New("auth.ldap.user_search_base is required with lookup_dn")
		}
		if _, err := ldap.CompileFilter(userFilter(o, "x")); err != nil {
			return nil, fmt.Errorf("auth.ldap.search_filter %q does not form a valid filter: %w", o.SearchFilter, err)
		}
	} else {
		if len(o.BindDNTemplates) == 0 {
			return nil, errors.New("auth.ldap: set bind_dn_template (one or more) or lookup_dn")
		}
		for _, t := range o.BindDNTemplates {
			if !strings.Contains(t, "{username}") {
				return nil, fmt.Errorf("auth.ldap.bind_dn_template %q has no {username}", t)
			}
			if _, err := ldap.ParseDN(strings.ReplaceAll(t, "{username}", "x")); err != nil {
				return nil, fmt.Errorf("auth.ldap.bind_dn_template %q is not a DN: %w", t, err)
			}
		}
	}
	a := &ldapAuth{
		o:     o,
		addr:  net.JoinHostPort(o.ServerAddress, strconv.Itoa(o.ServerPort)),
		namer: namer,
		log:   log.With("authenticator", "ldap", "server", net.JoinHostPort(o.ServerAddress, strconv.Itoa(o.ServerPort))),
	}
	for _, g := range o.AllowedGroups {
		dn, err := ldap.ParseDN(g)
		if err != nil {
			return nil, fmt.Errorf("auth.ldap.allowed_groups: %q is not a DN: %w", g, err)
		}
		a.allowed = append(a.allowed, dn)
	}
	if o.GroupSearchBase != "" {
		if _, err := ldap.ParseDN(o.GroupSearchBase); err != nil {
			return nil, fmt.Errorf("auth.ldap.group_search_base %q is not a DN: %w", o.GroupSearchBase, err)
		}
	}

	if o.TLS != "none" {
		cfg := &tls.Config{ServerName: o.ServerName, MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify}
		if cfg.ServerName == "" {
			cfg.ServerName = o.ServerAddress
		}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("auth.ldap.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("auth.ldap.ca_file %s holds no PEM certificate", o.CAFile)
			}
			cfg.RootCAs = pool
		}
		a.tls = cfg
		if o.InsecureSkipVerify {
			a.log.Error("LDAP TLS certificate verification is OFF (insecure_skip_verify): anyone on the path can read passwords; fix the CA file instead")
		}
	} else if o.CAFile != "" || o.InsecureSkipVerify {
		a.log.Warn("auth.ldap.ca_file and insecure_skip_verify are ignored with tls: none")
	}
	return a, nil
}

func (a *ldapAuth) Name() string { return "ldap" }

// Check connects (with TLS as configured), binds the service account when one
// is set, and disconnects.
func (a *ldapAuth) Check(ctx context.Context) error {
	if a.o.TLS == "none" {
		a.log.Warn("LDAP without TLS: passwords cross the network in clear")
	}
	c, done, err := a.dial(ctx)
	if err != nil {
		return fmt.Errorf("LDAP check: %w", err)
	}
	defer done()
	if a.o.BindDN != "" {
		if err := c.Bind(a.o.BindDN, a.o.BindPassword); err != nil {
			return fmt.Errorf("LDAP check: service account bind as %q: %w", a.o.BindDN, a.classify(ctx, err))
		}
		return nil
	}
	// Without a service account, read the root DSE: any answer, even a
	// refusal, shows the server is there and speaking LDAP.
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, a.timeLimit(), false,
		"(objectClass=*)", []string{"supportedLDAPVersion"}, nil))
	if err != nil {
		if err = a.classify(ctx, err); errors.Is(err, ErrUnavailable) {
			return fmt.Errorf("LDAP check: read root DSE: %w", err)
		}
	}
	return nil
}

func (a *ldapAuth) Authenticate(ctx context.Context, raw, password string) (Result, error) {
	// Nothing is dialled for input that can never authenticate.
	if err := checkInput(raw, password); err != nil {
		return Result{}, err
	}
	// The directory gets the login as trimmed, lower-case text: uid and
	// sAMAccountName compare case-insensitively, so "Alice" and "alice" bind
	// as the same entry. The canonical name (after username_map) is what the
	// rest of swarmhub sees.
	login := identity.Fold(raw)
	var name string
	if a.o.LookupDN && a.o.LookupDNUserDNAttribute != "" {
		// The typed name need not be a valid username (it may be an e-mail
		// address); the attribute's value is canonicalised after the bind.
		if len(login) > 256 {
			return Result{}, fmt.Errorf("%w: login name longer than 256 bytes", ErrInvalidCredentials)
		}
	} else {
		var err error
		if name, err = canonical(a.namer, raw); err != nil {
			return Result{}, err
		}
	}
	var (
		r   Result
		err error
	)
	if a.o.LookupDN {
		r, err = a.lookupAndBind(ctx, login, name, password)
	} else {
		r, err = a.templateBind(ctx, login, name, password)
	}
	switch {
	case err == nil:
		a.log.Debug("LDAP login", "login", login, "user", r.Username, "dn", r.DN, "groups", r.Groups)
	case errors.Is(err, ErrUnavailable):
		a.log.Warn("LDAP login failed: directory unavailable", "login", login, "err", err)
	case errors.Is(err, ErrDirectory):
		a.log.Error("LDAP login refused: directory problem", "login", login, "err", err)
	default:
		a.log.Info("LDAP login refused", "login", login, "err", err)
	}
	return r, err
}

func (a *ldapAuth) templateBind(ctx context.Context, login, name, password string) (Result, error) {
	c, done, err := a.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	var last error
	for _, t := range a.o.BindDNTemplates {
		dn := strings.ReplaceAll(t, "{username}", ldap.EscapeDN(login))
		err := c.Bind(dn, password)
		if err == nil {
			uid := a.ownUID(c, dn, login)
			groups, err := a.groups(ctx, c, dn, uid)
			if err != nil {
				return Result{}, err
			}
			return Result{Username: name, DN: dn, Groups: groups}, nil
		}
		if err = a.classify(ctx, err); !errors.Is(err, ErrInvalidCredentials) {
			return Result{}, fmt.Errorf("bind as %q: %w", dn, err)
		}
		last = err
	}
	return Result{}, last
}

func (a *ldapAuth) lookupAndBind(ctx context.Context, login, name, password string) (Result, error) {
	svc, done, err := a.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	if a.o.BindDN != "" {
		if err := svc.Bind(a.o.BindDN, a.o.BindPassword); err != nil {
			err = a.classify(ctx, err)
			if errors.Is(err, ErrInvalidCredentials) {
				// The user typed nothing wrong: the service account is.
				return Result{}, fmt.Errorf("%w: service account %q refused (check auth.ldap.bind_dn and bind_password): %w", ErrDirectory, a.o.BindDN, err)
			}
			return Result{}, fmt.Errorf("service account bind: %w", err)
		}
	}
	attrs := []string{a.o.UserAttribute}
	if a.o.LookupDNUserDNAttribute != "" {
		attrs = append(attrs, a.o.LookupDNUserDNAttribute)
	}
	filter := userFilter(a.o, login)
	// Size limit 2: enough to tell "exactly one" from "more than one"
	// without letting a wildcard list the directory.
	res, err := svc.Search(ldap.NewSearchRequest(a.o.UserSearchBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, a.timeLimit(), false, filter, attrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || errors.Is(err, ldap.ErrSizeLimitExceeded) ||
		(err == nil && len(res.Entries) > 1) {
		return Result{}, fmt.Errorf("%w: more than one entry under %q matches %s; refusing to guess", ErrDirectory, a.o.UserSearchBase, filter)
	}
	if err != nil {
		err = a.classify(ctx, err)
		if errors.Is(err, ErrInvalidCredentials) { // e.g. noSuchObject: the base is wrong
			err = fmt.Errorf("%w: %w", ErrDirectory, err)
		}
		return Result{}, fmt.Errorf("search %s under %q: %w", filter, a.o.UserSearchBase, err)
	}
	if len(res.Entries) == 0 {
		return Result{}, fmt.Errorf("%w: no entry matches %s", ErrInvalidCredentials, filter)
	}
	entry := res.Entries[0]

	if a.o.LookupDNUserDNAttribute != "" {
		v := entry.GetAttributeValue(a.o.LookupDNUserDNAttribute)
		if v == "" {
			return Result{}, fmt.Errorf("%w: entry %q has no %s attribute (auth.ldap.lookup_dn_user_dn_attribute)", ErrDirectory, entry.DN, a.o.LookupDNUserDNAttribute)
		}
		if name, err = canonical(a.namer, v); err != nil {
			return Result{}, fmt.Errorf("%w: %s of %q: %w", ErrDirectory, a.o.LookupDNUserDNAttribute, entry.DN, err)
		}
	}

	// Bind as the user on a fresh connection: the service connection keeps
	// its identity, and a failed user bind never leaves it half-bound.
	usr, doneUsr, err := a.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer doneUsr()
	if err := usr.Bind(entry.DN, password); err != nil {
		return Result{}, fmt.Errorf("bind as %q: %w", entry.DN, a.classify(ctx, err))
	}
	uid := entry.GetAttributeValue(a.o.UserAttribute)
	if uid == "" {
		uid = login
	}
	groupConn := usr
	if a.o.BindDN != "" {
		groupConn = svc
	}
	groups, err := a.groups(ctx, groupConn, entry.DN, uid)
	if err != nil {
		return Result{}, err
	}
	return Result{Username: name, DN: entry.DN, Groups: groups}, nil
}

func userFilter(o LDAPOptions, login string) string {
	return "(&(" + o.UserAttribute + "=" + ldap.EscapeFilter(login) + ")" + o.SearchFilter + ")"
}

// ownUID reads the user attribute of the entry just bound, for memberUid
// groups, whose values the nis schema compares case-exactly ("MixedCase" is
// not "mixedcase"). Falls back to the login name.
func (a *ldapAuth) ownUID(c *ldap.Conn, dn, login string) string {
	if len(a.allowed) == 0 || !a.usesMemberUID() {
		return login
	}
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, a.timeLimit(), false,
		"(objectClass=*)", []string{a.o.UserAttribute}, nil))
	if err != nil || len(res.Entries) != 1 {
		return login
	}
	if v := res.Entries[0].GetAttributeValue(a.o.UserAttribute); v != "" {
		return v
	}
	return login
}

func (a *ldapAuth) usesMemberUID() bool {
	for _, m := range a.o.GroupMemberAttributes {
		if strings.EqualFold(m, "memberUid") {
			return true
		}
	}
	return false
}

// groups returns the allowed groups (as configured) that list the user.
func (a *ldapAuth) groups(ctx context.Context, c *ldap.Conn, userDN, uid string) ([]string, error) {
	if len(a.allowed) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString("(|")
	for _, m := range a.o.GroupMemberAttributes {
		v := userDN
		if strings.EqualFold(m, "memberUid") {
			v = uid
		}
		b.WriteString("(" + m + "=" + ldap.EscapeFilter(v) + ")")
	}
	b.WriteString(")")
	filter := b.String()

	var out []string
	if a.o.GroupSearchBase != "" {
		res, err := c.Search(ldap.NewSearchRequest(a.o.GroupSearchBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, a.timeLimit(), false, filter, []string{"1.1"}, nil))
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return nil, fmt.Errorf("group search under %q: %w", a.o.GroupSearchBase, a.groupErr(ctx, err))
		}
		for i, g := range a.allowed {
			for _, e := range res.Entries {
				if dn, err := ldap.ParseDN(e.DN); err == nil && g.EqualFold(dn) {
					out = append(out, a.o.AllowedGroups[i])
					break
				}
			}
		}
		return out, nil
	}
	for i, g := range a.o.AllowedGroups {
		res, err := c.Search(ldap.NewSearchRequest(g, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, a.timeLimit(), false, filter, []string{"1.1"}, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			a.log.Warn("allowed group does not exist in the directory", "group", g)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("membership of %q: %w", g, a.groupErr(ctx, err))
		}
		if len(res.Entries) > 0 {
			out = append(out, a.o.AllowedGroups[i])
		}
	}
	return out, nil
}

func (a *ldapAuth) groupErr(ctx context.Context, err error) error {
	err = a.classify(ctx, err)
	if errors.Is(err, ErrInvalidCredentials) {
		return fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	return err
}

func (a *ldapAuth) timeLimit() int {
	return int((a.o.OperationTimeout + time.Second - 1) / time.Second)
}

// classify maps an LDAP error onto this package's errors.
func (a *ldapAuth) classify(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w (%w)", ErrUnavailable, ctx.Err(), err)
	}
	switch {
	case ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable,
		ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultServerDown, ldap.LDAPResultTimeout, ldap.LDAPResultConnectError):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultNoSuchObject,
		ldap.LDAPResultInvalidDNSyntax, ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultUnwillingToPerform):
		return fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	default:
		return fmt.Errorf("%w: %w", ErrDirectory, err)
	}
}

// dial connects with the configured TLS mode. The returned func closes the
// connection. Cancelling ctx closes the socket, which ends any request in
// flight; go-ldap itself takes no context.
func (a *ldapAuth) dial(ctx context.Context) (*ldap.Conn, func(), error) {
	d := &net.Dialer{Timeout: a.o.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: connect to %s: %w", ErrUnavailable, a.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	fail := func(err error) (*ldap.Conn, func(), error) {
		stop()
		raw.Close()
		return nil, nil, err
	}

	var nc net.Conn = raw
	if a.o.TLS == "ldaps" {
		tc := tls.Client(raw, a.tls)
		hctx, cancel := context.WithTimeout(ctx, a.o.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("%w: TLS handshake with %s (server name %q): %w", ErrUnavailable, a.addr, a.tls.ServerName, err))
		}
		nc = tc
	}
	c := ldap.NewConn(nc, a.o.TLS == "ldaps")
	c.Start()
	c.SetTimeout(a.o.OperationTimeout)
	done := func() { stop(); c.Close() }

	if a.o.TLS == "starttls" {
		// go-ldap's StartTLS handshake has no timeout of its own.
		_ = raw.SetDeadline(time.Now().Add(a.o.OperationTimeout))
		err := c.StartTLS(a.tls)
		_ = raw.SetDeadline(time.Time{})
		if err != nil {
			done()
			// Never continue in plaintext: the next step would send a password.
			return nil, nil, fmt.Errorf("%w: StartTLS with %s (server name %q) failed, not sending credentials in clear: %w",
				ErrUnavailable, a.addr, a.tls.ServerName, err)
		}
	}
	return c, done, nil
}
