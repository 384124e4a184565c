#!/usr/bin/env bash
# Brings Osprey's distributed mode up in Docker: the PCN, two SCNs joined to
# it (each serving a tenant of its own on the PCN), and a branch sensor on
# each SCN, enrolled and taking mail; then sends a few messages to each
# sensor and prints where to look. Run it again at any time: it only does
# what is not done yet.
#
#   ./up.sh                  # needs the images: make image
#   ./up.sh down             # stop and remove the containers (keeps the volumes)
#   ./up.sh destroy          # ... and the volumes (every setting and alert)
#
# Environment: COMPOSE (default: "docker compose" if it works, else
# docker-compose), COMPOSE_PROJECT_NAME (default osprey-distributed),
# OSPREY_ENV_FILE (default ./.env, written on the first run with the admin
# password of the centrals and the passwords of the SCNs' accounts on the
# PCN, mode 0600).
set -euo pipefail
cd "$(dirname "$0")"
env_file=${OSPREY_ENV_FILE:-.env}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-osprey-distributed}
if [[ -z ${COMPOSE:-} ]]; then
	if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
if [[ ! -f $env_file ]]; then
	umask 077
	{
		echo "# made by up.sh: the centrals' first admin password, each central's gossip key,"
		echo "# and the passwords of the SCNs' accounts on the PCN"
		echo "OSPREY_ADMIN_PASSWORD=$(secret)"
		for c in PCN SCN_A SCN_B; do echo "OSPREY_GOSSIP_KEY_$c=$(head -c 32 /dev/urandom | base64)"; done
		echo "OSPREY_SCN_A_PASSWORD=$(secret)"
		echo "OSPREY_SCN_B_PASSWORD=$(secret)"
	} >"$env_file"
	echo "wrote $env_file"
fi
compose() { $COMPOSE --env-file "$env_file" "$@"; }
# ctl against a central: ctl pcn|scn-a|scn-b ARGS...
ctl() {
	local at=$1; shift
	compose run --rm -T -e "OSPREY_ADDRESS=https://$(addr "$at"):8443" ctl "$@"
}
setting() { local v; v=$(sed -n "s/^$1=//p" "$env_file" | tail -n1); echo "${!1:-${v:-$2}}"; }
wan=$(setting OSPREY_WAN_NET 172.31.10)
net_a=$(setting OSPREY_BRANCH_A_NET 172.31.21)
net_b=$(setting OSPREY_BRANCH_B_NET 172.31.22)
publish=$(setting OSPREY_PCN_PUBLISH 127.0.0.1:9443)
addr() { case $1 in pcn) echo "$wan.11" ;; scn-a) echo "$wan.12" ;; scn-b) echo "$wan.13" ;; esac; }

case ${1:-up} in
down) compose --profile client down --remove-orphans; exit ;;
destroy) compose --profile client down --remove-orphans --volumes; exit ;;
up) ;;
*) echo "usage: $0 [up|down|destroy]" >&2; exit 2 ;;
esac

for img in "$(setting OSPREY_IMAGE osprey:latest)" "$(setting OSPREY_CLIENT_IMAGE osprey-mailclient:latest)"; do
	docker image inspect "$img" >/dev/null 2>&1 || { echo "no image $img: run make image first" >&2; exit 1; }
done

compose up -d pcn scn-a scn-b
for c in pcn scn-a scn-b; do
	echo -n "waiting for $c"
	for i in $(seq 90); do
		if ctl "$c" pcn status >/dev/null 2>&1; then break; fi
		if [[ $(docker inspect -f '{{.State.Status}}' "$(compose ps -q "$c")") == exited ]]; then
			echo; echo "$c exited:" >&2; compose logs --tail 20 "$c" >&2; exit 1
		fi
		[[ $i == 90 ]] && { echo; echo "$c did not answer in 3 minutes: $COMPOSE logs $c" >&2; exit 1; }
		echo -n .; sleep 2
	done
	echo
done

# On the PCN: a tenant for each branch office and an account for each SCN.
fingerprint=$(ctl pcn pcn status | sed -n 's/.*"own_fingerprint": *"\([0-9a-f]*\)".*/\1/p')
[[ -n $fingerprint ]] || { echo "the PCN shows no fingerprint: is it started with OSPREY_PCN=true?" >&2; exit 1; }
for s in a b; do
	ctl pcn tenants list | grep "^branch-$s\b" >/dev/null || ctl pcn tenants create "branch-$s" "Branch office ${s^^}" >/dev/null
	ctl pcn users list | grep "^scn-$s\b" >/dev/null ||
		echo "{\"name\":\"scn-$s\",\"role\":\"administrator\",\"all_tenants\":true,\"password\":\"$(setting "OSPREY_SCN_${s^^}_PASSWORD" "")\"}" | ctl pcn users create --file - >/dev/null
done

# Each SCN asks to join, pinned to the PCN's fingerprint as its
# administrator compared it; the PCN's administrator accepts it for its
# tenant. (Done by hand, compare `ctl pcn fingerprint` on the SCN with
# `ctl pcn status` on the PCN before joining.)
for s in a b; do
	state=$(ctl "scn-$s" pcn status | sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' | head -n1)
	if [[ -z $state || $state == disconnected || $state == rejected ]]; then
		seen=$(ctl "scn-$s" pcn fingerprint "$wan.11:7443" | head -n1)
		[[ $seen == "$fingerprint" ]] || { echo "scn-$s sees fingerprint $seen, the PCN shows $fingerprint: not joining" >&2; exit 1; }
		setting "OSPREY_SCN_${s^^}_PASSWORD" "" |
			ctl "scn-$s" pcn join "$wan.11:7443" --fingerprint "$fingerprint" --name "scn-$s" --pcn-username "scn-$s" --pcn-password-file - >/dev/null
		echo "scn-$s asked to join the PCN"
	fi
	if ctl pcn servers list | grep "^scn-$s\s\+pending" >/dev/null; then
		ctl pcn servers accept "scn-$s" --tenant "branch-$s" >/dev/null
		echo "accepted scn-$s on the PCN for tenant branch-$s"
	fi
done
for s in a b; do
	echo -n "waiting for scn-$s to link"
	for i in $(seq 60); do
		ctl "scn-$s" pcn status | grep '"online": *true' >/dev/null && break
		[[ $i == 60 ]] && { echo; echo "scn-$s did not link: $COMPOSE logs scn-$s pcn" >&2; exit 1; }
		echo -n .; sleep 2
	done
	echo
done

# A branch sensor on each SCN: a join token on its first start, then
# approval, then SMTP for the branch's mail server.
sensor_id() { ctl "$1" sensors list | awk -v n="$2" '$2 == n {print $1; exit}'; }
for s in a b; do
	scn=scn-$s sensor=sensor-$s net=$net_a
	[[ $s == b ]] && net=$net_b
	id=$(sensor_id "$scn" "$sensor")
	if [[ -z $id ]]; then
		token=$(ctl "$scn" tokens create join default 600 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
		env "OSPREY_JOIN_TOKEN_SENSOR_${s^^}=$token" $COMPOSE --env-file "$env_file" up -d "$sensor"
		for i in $(seq 60); do
			id=$(sensor_id "$scn" "$sensor") && [[ -n $id ]] && break
			sleep 1
		done
		[[ -n $id ]] || { echo "$sensor did not enroll: $COMPOSE logs $sensor" >&2; exit 1; }
		echo "$sensor enrolled on $scn as $id; approving it"
		ctl "$scn" sensor approve "$id" >/dev/null
	else
		compose up -d "$sensor"
	fi
	echo "{\"enabled\":true,\"listen\":\"0.0.0.0:25\",\"destination_domains\":[\"example.com\"],\"clients\":[\"$net.0/24\"],\"max_message_size\":{\"value\":25,\"unit\":\"MB\"}}" |
		ctl "$scn" sensor smtp set "$id" --file - >/dev/null
done

for s in a b; do
	echo "sending 5 messages to sensor-$s:"
	for i in $(seq 30); do
		if compose run --rm "mail-$s" --count 5 --run "up$s$(date +%s)"; then break; fi
		[[ $i == 30 ]] && { echo "the mail client could not send to sensor-$s" >&2; exit 1; }
		sleep 2
	done
done
ctl pcn servers list
ui=$(compose port pcn 8443 2>/dev/null | tail -n1)

cat <<MSG

Osprey's distributed mode is up (project $COMPOSE_PROJECT_NAME).

  PCN web UI and API:  https://${ui:-$publish}/  (self-signed certificate; the Servers page lists the SCNs)
  Admin:               user "admin" on every central, password in $(realpath "$env_file") (OSPREY_ADMIN_PASSWORD)
  SCNs:                https://$wan.12:8443/ (scn-a, tenant branch-a), https://$wan.13:8443/ (scn-b, tenant branch-b)
  Branch sensors:      sensor-a $net_a.21:25, sensor-b $net_b.21:25 (from their branch networks)

  $COMPOSE --env-file $env_file -p $COMPOSE_PROJECT_NAME run --rm ctl servers list
  $COMPOSE --env-file $env_file -p $COMPOSE_PROJECT_NAME run --rm -e OSPREY_ADDRESS=https://$wan.12:8443 ctl sensors list
  $COMPOSE --env-file $env_file -p $COMPOSE_PROJECT_NAME run --rm mail-a --count 100
  $0 down
MSG
