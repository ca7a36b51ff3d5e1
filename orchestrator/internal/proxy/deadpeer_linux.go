package proxy

import "syscall"

// setUserTimeout makes the kernel drop a connection whose sent data (or
// keep-alive probe) stays unacknowledged for upstreamUserTimeout.
func setUserTimeout(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(upstreamUserTimeout.Milliseconds()))
	})
	if err != nil {
		return err
	}
	return serr
}

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h), which package syscall
// does not name.
const tcpUserTimeout = 0x12
