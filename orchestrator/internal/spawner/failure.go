package spawner

import (
	"strings"
)

// hint adds what a person can do about a Docker error we recognise.
func hint(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "no such image"), strings.Contains(m, "pull access denied"),
		strings.Contains(m, "manifest unknown"), strings.Contains(m, "repository does not exist"):
		return " — the notebook image is not on this node; ask an admin to load it or fix the configured image"
	case strings.Contains(m, "no such device") || strings.Contains(m, "nfs"):
		return " — the node could not mount the workspace (NFS client missing or export unreachable); ask an admin"
	case strings.Contains(m, "no suitable node"), strings.Contains(m, "insufficient resources"):
		return " — no node has enough free CPU or memory, or matches the placement constraints; try again later or ask an admin"
	case strings.Contains(m, "exit code 137"), strings.Contains(m, "oom"):
		return " — the server ran out of memory; ask an admin about the memory limit"
	case strings.Contains(m, "no such file or directory") && strings.Contains(m, "mount"):
		return " — the workspace directory is missing on the node; ask an admin"
	}
	return ""
}
