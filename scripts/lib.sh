# shellcheck shell=bash
# Shared helpers for swarmhub's scripts. Source it; it sets nothing but
# variables and functions, so callers keep `set -euo pipefail` semantics.

# Repository root, whatever the caller's working directory.
SWARMHUB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SWARMHUB_ROOT

# Tag of the locally built images (swarmhub/orchestrator:$SWARMHUB_TAG, ...).
SWARMHUB_TAG="${SWARMHUB_TAG:-dev}"
export SWARMHUB_TAG

# The legacy builder: this engine (20.10) has no buildx plugin beside it, and
# the newer CLI refuses BuildKit without one.
export DOCKER_BUILDKIT=0

log() { printf '%s %s\n' "[$(basename "$0")]" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# now_s prints seconds since the epoch (for durations in messages).
now_s() { date +%s; }

# is_root and is_debian decide whether we may install packages ourselves.
is_root() { [[ "$(id -u)" -eq 0 ]]; }
is_debian() { [[ -r /etc/debian_version ]] && have apt-get && have dpkg-query; }

# docker_ok: the engine answers.
docker_ok() { docker info >/dev/null 2>&1; }

# swarm_state prints the local node's swarm state (active, inactive, ...).
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

# image_label IMAGE KEY prints a label of a local image, or nothing if the
# image or the label is absent.
image_label() {
	docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# image_exists IMAGE
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# hash_inputs PATH... prints one sha256 over the names and contents of the
# given files (directories are walked, sorted, so the order is stable) and of
# stdin when "-" is given (for script text or build arguments).
hash_inputs() {
	local p f
	{
		for p in "$@"; do
			if [[ "$p" == "-" ]]; then
				printf 'stdin\n'
				cat
			elif [[ -d "$p" ]]; then
				while IFS= read -r -d '' f; do
					printf 'file %s\n' "${f#"$SWARMHUB_ROOT"/}"
					sha256sum <"$f"
				done < <(find "$p" -type f -print0 | LC_ALL=C sort -z)
			elif [[ -f "$p" ]]; then
				printf 'file %s\n' "${p#"$SWARMHUB_ROOT"/}"
				sha256sum <"$p"
			else
				printf 'missing %s\n' "${p#"$SWARMHUB_ROOT"/}"
			fi
		done
	} | sha256sum | cut -d' ' -f1
}

# wait_for SECONDS DESCRIPTION CMD... retries CMD every second until it
# succeeds; returns 1 after SECONDS.
wait_for() {
	local timeout="$1" what="$2" deadline
	shift 2
	deadline=$(($(now_s) + timeout))
	until "$@" >/dev/null 2>&1; do
		if (($(now_s) >= deadline)); then
			log "timed out after ${timeout}s waiting for ${what}"
			return 1
		fi
		sleep 1
	done
}

# free_port prints a TCP port that nothing listens on right now.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
