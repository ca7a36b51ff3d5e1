// Package spawnfail classifies why a spawn failed from its error text (the
// record's Error, Docker's task error), so that the spawner's hint, the
// failure metric's label and the advice on the student's home page all
// agree. It is its own package so that metrics and web need not import the
// spawner and its Docker client.
package spawnfail

import "strings"

// Class is a short, bounded name for a kind of spawn failure; the values
// are the reason labels of swarmhub_spawn_failures_total.
type Class string

// Failure classes.
const (
	Image     Class = "image"     // the notebook image is missing or unpullable
	Mount     Class = "mount"     // the workspace could not be attached
	OOM       Class = "oom"       // the server ran out of memory
	Timeout   Class = "timeout"   // the server did not become ready in time
	Resources Class = "resources" // no node can take the task
	Stopped   Class = "stopped"   // the spawn was cancelled by a stop or a removal
	Docker    Class = "docker"    // the Docker API itself failed
	Other     Class = "other"
)

// Classes lists every class.
func Classes() []Class {
	return []Class{Image, Mount, OOM, Timeout, Resources, Stopped, Docker, Other}
}

// rules are tried in order; the first class with a matching substring of
// the lower-cased text wins. A cause named in the text (a missing image, a
// full cluster) beats the timeout it led to, and the Docker API class only
// applies when nothing more specific is named.
var rules = []struct {
	class Class
	subs  []string
}{
	{Image, []string{"no such image", "pull access denied", "manifest unknown", "image not found", "repository does not exist", "invalid reference format"}},
	{Mount, []string{"mount", "no such device", "nfs", "volume", "permission denied"}},
	{OOM, []string{"oom", "out of memory", "exit code 137", "exit status 137", "exit (137)"}},
	{Resources, []string{"insufficient resources", "no suitable node", "no free address"}},
	{Timeout, []string{"did not become ready", "timeout", "timed out", "deadline"}},
	{Stopped, []string{"stopped while starting", "removed while"}},
	{Docker, []string{"create service", "docker", "daemon", "rpc error"}},
}

// Classify maps a spawn's error text to its class; text it does not
// recognise (including "") is Other.
func Classify(msg string) Class {
	s := strings.ToLower(msg)
	for _, r := range rules {
		for _, sub := range r.subs {
			if strings.Contains(s, sub) {
				return r.class
			}
		}
	}
	return Other
}

// Hint is what an admin can do about a failure, to append to its message
// (" — ..."), or "" when there is nothing specific to say. Appending it
// does not change the message's class.
func Hint(msg string) string {
	s := strings.ToLower(msg)
	switch Classify(msg) {
	case Image:
		return " — the notebook image is not on this node; ask an admin to load it or fix the configured image"
	case Mount:
		switch {
		case strings.Contains(s, "no such device"), strings.Contains(s, "nfs"):
			return " — the node could not mount the workspace (NFS client missing or export unreachable); ask an admin"
		case strings.Contains(s, "no such file or directory"):
			return " — the workspace directory is missing on the node; ask an admin"
		}
	case OOM:
		return " — the server ran out of memory; ask an admin about the memory limit"
	case Resources:
		return " — no node has enough free CPU or memory, or matches the placement constraints; try again later or ask an admin"
	}
	return ""
}
