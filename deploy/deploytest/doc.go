// Package deploytest runs the compose cluster of deploy/compose in the local
// Docker engine and breaks it: a central container killed, a central cut
// from the others with docker network disconnect, a rolling restart of every
// central, the PostgreSQL they share stopped and started again, a branch
// sensor cut from the centrals for a minute. Mail flows throughout, from a
// client container that resolves smtp.<zone> through the cluster's own DNS
// as a mail server would, and from a client in a branch sensor's network
// namespace (the branch office's mail server); after each fault every
// message answered 250 must be recorded by the cluster exactly once (as the
// API reads it back from PostgreSQL), and every node must show the same
// healthy cluster. PostgreSQL must answer the centrals and be out of the
// branch network's reach.
//
// The tests are skipped under -short and without a Docker engine (they fail
// instead when OSPREY_REQUIRE_PEERS=1). They build the images with
// deploy/image/build.sh, or use OSPREY_DEPLOYTEST_IMAGE (and
// OSPREY_DEPLOYTEST_CLIENT_IMAGE, OSPREY_DEPLOYTEST_POSTGRES_IMAGE) when set. Everything they make (containers,
// networks, volumes) belongs to one compose project of a unique name and is
// removed when they end, failed or not.
//
// Static checks of the other deployment files (systemd units, Kubernetes
// manifests) live here too and need no Docker.
package deploytest
