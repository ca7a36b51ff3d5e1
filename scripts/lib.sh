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

# storage_root_init ROOT creates a storage root: the orchestrator creates
# users/NAME (owner 1000:100) itself; the exchange is shared by every
# student, like nbgrader's exchange must be.
storage_root_init() {
	mkdir -p "$1/users" "$1/exchange" || return 1
	chown 1000:100 "$1/exchange" 2>/dev/null || log "WARNING: could not chown $1/exchange to 1000:100 (not root?)"
	chmod 0777 "$1/exchange"
}

# new_password FILE writes a random dummy-authenticator password, readable
# by the owner only.
new_password() {
	(
		umask 077
		head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$1"
	)
}

# stack_env PORT CONFIG PASSWORD_FILE STORAGE_ROOT [DOCKER...] sets the array
# STACK_ENV to the NAME=VALUE words `docker stack deploy -c docker-stack.yml`
# needs for the images of $SWARMHUB_TAG. Configs and secrets are immutable in
# swarm, so their names carry a hash of the content; the image IDs make a
# rebuilt image under the same tag roll out. DOCKER... is the command that
# inspects the images where the stack runs (default: docker).
stack_env() {
	local port="$1" config="$2" password_file="$3" root="$4"
	local orchestrator="swarmhub/orchestrator:$SWARMHUB_TAG" redis="swarmhub/redis:$SWARMHUB_TAG"
	local config_version password_version orchestrator_id redis_id
	shift 4
	(($# > 0)) || set -- docker
	config_version="$(sha256sum "$config" | cut -c1-12)"
	password_version="$(sha256sum "$password_file" | cut -c1-12)"
	orchestrator_id="$("$@" image inspect --format '{{.Id}}' "$orchestrator")"
	redis_id="$("$@" image inspect --format '{{.Id}}' "$redis")"
	# shellcheck disable=SC2034 # read by the callers
	STACK_ENV=(
		"SWARMHUB_PORT=$port"
		"SWARMHUB_CONFIG=$config"
		"SWARMHUB_CONFIG_VERSION=$config_version"
		"SWARMHUB_DUMMY_PASSWORD_FILE=$password_file"
		"SWARMHUB_DUMMY_PASSWORD_VERSION=$password_version"
		"SWARMHUB_STORAGE_ROOT=$root"
		"SWARMHUB_ORCHESTRATOR_IMAGE=$orchestrator"
		"SWARMHUB_ORCHESTRATOR_IMAGE_ID=$orchestrator_id"
		"SWARMHUB_REDIS_IMAGE=$redis"
		"SWARMHUB_REDIS_IMAGE_ID=$redis_id"
	)
}

# stack_services STACK prints the IDs of the stack's services.
stack_services() { docker service ls -q --filter "label=com.docker.stack.namespace=$1"; }

# user_services INSTANCE... prints the IDs of the services the
# orchestrators of those instances created outside the stack: students'
# servers and the image pre-pull job.
user_services() {
	local instance
	for instance in "$@"; do
		docker service ls -q --filter label=swarmhub.managed=true --filter "label=swarmhub.instance=$instance"
		docker service ls -q --filter "label=swarmhub.prepull=$instance"
	done
}

# stack_gone STACK [INSTANCE...] removes the stack once more and succeeds
# when its services, containers and networks and the instances' servers
# are gone: stack rm fails on a network while a task still uses it.
stack_gone() {
	local stack="$1"
	shift
	docker stack rm "$stack" >/dev/null 2>&1 || true
	[[ -z "$(stack_services "$stack")$(user_services "$@")" ]] &&
		[[ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack")" ]] &&
		[[ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ]]
}

# stack_teardown STACK SECONDS [INSTANCE...] removes the instances' servers
# (first: they hold the stack's network), then the stack, and waits up to
# SECONDS until all of it is gone; it returns 1 if it is not. Volumes,
# configs and secrets are kept.
stack_teardown() {
	local stack="$1" timeout="$2" users
	shift 2
	users="$(user_services "$@")"
	# shellcheck disable=SC2086 # one ID per word
	[[ -z "$users" ]] || docker service rm $users >/dev/null 2>&1 || true
	wait_for "$timeout" "the stack's services, containers and network to go" stack_gone "$stack" "$@"
}

# stack_remove_configs STACK removes the stack's configs and secrets that no
# service uses any more (docker refuses to remove the others).
stack_remove_configs() {
	local kind ids
	for kind in config secret; do
		ids="$(docker "$kind" ls -q --filter "label=com.docker.stack.namespace=$1" 2>/dev/null || true)"
		# shellcheck disable=SC2086 # one ID per word
		[[ -z "$ids" ]] || docker "$kind" rm $ids >/dev/null 2>&1 || true
	done
}
