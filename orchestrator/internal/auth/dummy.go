package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
)

type dummy struct {
	sum   [sha256.Size]byte
	set   bool
	namer Namer
}

// NewDummy returns an authenticator that accepts any valid username with one
// shared password. It is for development only and says so in the log. An
// empty shared password refuses every login (unlike JupyterHub's
// DummyAuthenticator, which then accepts any password).
func NewDummy(password string, namer Namer, log *slog.Logger) Authenticator {
	log.Warn("dummy authenticator: development only; every user shares one password")
	if password == "" {
		log.Error("dummy authenticator has no password configured: every login is refused")
	}
	return &dummy{sum: sha256.Sum256([]byte(password)), set: password != "", namer: namer}
}

func (d *dummy) Name() string                    { return "dummy" }
func (d *dummy) Check(ctx context.Context) error { return nil }

func (d *dummy) Authenticate(ctx context.Context, username, password string) (Result, error) {
	if err := checkInput(username, password); err != nil {
		return Result{}, err
	}
	name, err := canonical(d.namer, username)
	if err != nil {
		return Result{}, err
	}
	// Comparing fixed-size hashes keeps the comparison constant-time
	// regardless of the typed password's length.
	sum := sha256.Sum256([]byte(password))
	if !d.set || subtle.ConstantTimeCompare(sum[:], d.sum[:]) != 1 {
		return Result{}, ErrInvalidCredentials
	}
	return Result{Username: name}, nil
}
