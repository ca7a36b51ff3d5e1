package web

import (
	"context"
	"net/http"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/auth"
	"github.com/swarmhub/swarmhub/orchestrator/internal/spawner"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// The interfaces below are what the web layer needs from the rest of the
// orchestrator; cmd wires the real implementations in.

// Store is the Redis-backed state the handlers read and write.
type Store interface {
	CreateSession(ctx context.Context, user string, idle, absolute time.Duration) (store.Session, error)
	GetSessionByHash(ctx context.Context, hash string, idle, absolute time.Duration) (store.Session, error)
	DeleteSession(ctx context.Context, id string) error
	DeleteUserSessions(ctx context.Context, user string) (int, error)

	GetUser(ctx context.Context, name string) (store.User, error)
	GetAdmission(ctx context.Context, name string) (store.Admission, error)
	PutUser(ctx context.Context, u store.User) error
	DeleteUser(ctx context.Context, name string) error
	ListUsers(ctx context.Context) ([]store.User, error)

	GetServer(ctx context.Context, user string) (store.Server, error)
	ListServers(ctx context.Context) ([]store.Server, error)
	ReadProgress(ctx context.Context, user, afterID string, block time.Duration) ([]store.Progress, error)

	CreateTokenExpiring(ctx context.Context, user, note string, expires time.Time) (string, store.Token, error)
	CreateScopedToken(ctx context.Context, user, note string, scopes []string, expires time.Time) (string, store.Token, error)
	LookupToken(ctx context.Context, plain string) (store.Token, error)
	ListTokens(ctx context.Context, user string) ([]store.Token, error)
	DeleteToken(ctx context.Context, user, id string) error

	AddEvent(ctx context.Context, e store.Event) error
	Events(ctx context.Context, before string, limit int) ([]store.Event, error)

	Activity(ctx context.Context) (map[string]time.Time, error)
	RecordActivity(ctx context.Context, batch map[string]time.Time) error

	CreateGroup(ctx context.Context, name string) error
	DeleteGroup(ctx context.Context, name string) error
	AddGroupMembers(ctx context.Context, name string, users []string) error
	RemoveGroupMembers(ctx context.Context, name string, users []string) error
	Groups(ctx context.Context) (map[string][]string, error)
	InGroup(ctx context.Context, group, user string) (bool, error)

	GetSetting(ctx context.Context, name string) (string, error)
	SetSetting(ctx context.Context, name, value string) error
	RecordRunning(ctx context.Context, t time.Time, n int) error
	RunningSeries(ctx context.Context, since time.Time) ([]store.Sample, error)

	PublishRevoke(ctx context.Context, user string) error

	WorkspaceUsage(ctx context.Context) (map[string]store.Usage, error)
	UserUsage(ctx context.Context, user string) (store.Usage, bool, error)
}

// Authenticator checks a login name and password against the directory.
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (auth.Result, error)
}

// Admitter applies the allow/admin/block policy to an authenticated user
// and the lists' answer for them.
type Admitter interface {
	Admit(r auth.Result, a auth.Admission) (admin bool, err error)
}

// Regulator throttles repeated login failures.
type Regulator interface {
	Allowed(ctx context.Context, user, ip string) error
	Failed(ctx context.Context, user, ip string) error
	Succeeded(ctx context.Context, user, ip string) error
}

// FailureLog decides which failed logins are recorded as events of their
// own (auth.FailureLog), so a flood of them cannot flush the event log.
type FailureLog interface {
	Note(ctx context.Context, user, ip string) (auth.FailureVerdict, error)
	NoteBan(ctx context.Context, user, ip string) (auth.FailureVerdict, error)
}

// Namer turns a raw login or path name into the canonical username.
type Namer interface {
	Canonical(raw string) (string, error)
}

// Servers starts and stops user servers.
type Servers interface {
	Start(ctx context.Context, user string, so spawner.StartOptions) (store.Server, error)
	Stop(ctx context.Context, user, reason string) error
}

// UserProxy forwards /user/NAME/ traffic and can cut a user's or a login
// session's websockets.
type UserProxy interface {
	http.Handler
	CloseUser(user string) int
	CloseSession(session string) int
}

// Checker reports the health of one dependency.
type Checker interface {
	Check(ctx context.Context) error
}

// LoginObserver counts login attempts by outcome: success, bad_credentials,
// banned, not_allowed, unavailable (metrics.Metrics satisfies it).
type LoginObserver interface {
	Login(outcome string)
}

// ArchiveLister lists the archive runs for the dashboard; the lifecycle
// code adapts the archiver to it.
type ArchiveLister interface {
	Runs(ctx context.Context) ([]ArchiveRun, error)
}

// ArchiveRun is one nightly (or manual) archive run.
type ArchiveRun struct {
	Run      string // directory name under archives/, e.g. 2025-03-01
	Complete bool
	Users    int
	Errors   int
	Files    []ArchiveFile
}

// ArchiveFile is one user's archive in a run.
type ArchiveFile struct {
	User string
	Size int64
}
