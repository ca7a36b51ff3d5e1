//go:build !linux

package proxy

import "net"

// quickAck is Linux-only; elsewhere delayed ACKs stay as the system sets them.
func quickAck(net.Conn) {}
