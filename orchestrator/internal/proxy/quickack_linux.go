package proxy

import (
	"net"
	"syscall"
)

// quickAck asks the kernel to acknowledge received data at once (and to
// send an ACK it is holding back). Linux leaves quick-ACK mode by itself,
// hence one call per read.
func quickAck(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
