# shellcheck shell=bash
# shellcheck disable=SC2034 # used by the scripts that source this file
# Names shared by scripts/cluster-up and scripts/cluster-down (source after
# lib.sh). The Go test (orchestrator/e2e/cluster_test.go) reads cluster.env.

CLUSTER_NET=swarmhub-cluster
CLUSTER_LABEL=swarmhub.cluster=swarmhub-cluster
CLUSTER_STACK=swarmhub
CLUSTER_INSTANCE=swarmhub-cluster
MANAGERS=(swarmhub-node1 swarmhub-node2 swarmhub-node3)
WORKERS=(swarmhub-node4 swarmhub-node5)
# A registry container on the cluster network (images/registry); every
# node's dockerd pulls from it over plain HTTP.
REGISTRY=swarmhub-registry
REGISTRY_ADDR="$REGISTRY:5000"
CLUSTER_DIR="${SWARMHUB_CLUSTER_DIR:-/srv/swarmhub-cluster}"
STORAGE_DIR="$CLUSTER_DIR/storage"
DEPLOY_DIR="$CLUSTER_DIR/deploy"
# The template Docker data directory with the images loaded (a cache kept
# between clusters; cluster-down --all removes it).
CLUSTER_CACHE_VOLUME=swarmhub-cluster-images
CLUSTER_CACHE_LABEL=swarmhub.cluster-images
