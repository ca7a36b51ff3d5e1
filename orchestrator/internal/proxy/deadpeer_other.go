//go:build !linux

package proxy

import "syscall"

// setUserTimeout is Linux-only; elsewhere keep-alives alone find dead peers.
func setUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }
