package web

import "github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"

// failureAdvice turns a spawn's error text into what the student can do
// about it. The raw text is shown too, for the course staff.
func failureAdvice(msg string) string {
	if msg == "" {
		return ""
	}
	switch spawnfail.Classify(msg) {
	case spawnfail.Image:
		return "The notebook image this hub is set to use is missing. Nothing you can fix: tell the course staff, quoting the message below."
	case spawnfail.Mount:
		return "Your files could not be attached to the server (a storage problem). Your files are safe. Try again in a few minutes; if it fails again, tell the course staff."
	case spawnfail.OOM:
		return "Your server ran out of memory. Start it again; if a notebook loads very large data, restart its kernel before running it again."
	case spawnfail.Resources:
		return "The cluster is full right now. Try again in a few minutes."
	case spawnfail.Timeout:
		return "Your server took too long to start, probably because many are starting at once. Press Start to try again."
	case spawnfail.Stopped:
		return "The start was cancelled (the server was stopped meanwhile). Press Start to try again."
	}
	return "Press Start to try again; if it fails again, tell the course staff and quote the message below."
}
