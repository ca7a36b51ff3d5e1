package proxy

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestUpstreamConnectionsGiveUpOnDeadPeers: connections to user servers
// carry TCP_USER_TIMEOUT and keep-alives, so a request sent to a server
// whose node died fails instead of waiting forever.
func TestUpstreamConnectionsGiveUpOnDeadPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := NewTransport().DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*quickAckConn).Conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ut, ka, idle int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		if ut, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout); gerr != nil {
			return
		}
		if ka, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE); gerr != nil {
			return
		}
		idle, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if time.Duration(ut)*time.Millisecond != upstreamUserTimeout || ka != 1 || idle != 15 {
		t.Errorf("TCP_USER_TIMEOUT %d ms, SO_KEEPALIVE %d, TCP_KEEPIDLE %d s; want %d ms, 1, 15 s", ut, ka, idle, upstreamUserTimeout.Milliseconds())
	}
}
