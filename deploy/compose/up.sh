#!/usr/bin/env bash
# Brings the compose cluster up, ready to take mail: three central nodes,
# two branch sensors enrolled (join token, then approval) and every sensor's
# SMTP integration enabled; then sends five messages to smtp.<zone> with the
# mail client and prints where to look. Run it again at any time: it only
# does what is not done yet.
#
#   ./up.sh                  # needs the images: make image
#   ./up.sh down             # stop and remove the containers (keeps the volumes)
#   ./up.sh destroy          # ... and the volumes (every message and setting)
#
# Environment: COMPOSE (default: "docker compose" if it works, else
# docker-compose), COMPOSE_PROJECT_NAME (default osprey), OSPREY_ENV_FILE
# (default ./.env, written on the first run with a new gossip key, admin
# password and database password, mode 0600).
set -euo pipefail
cd "$(dirname "$0")"
env_file=${OSPREY_ENV_FILE:-.env}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-osprey}
if [[ -z ${COMPOSE:-} ]]; then
	if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE=docker-compose; fi
fi
secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
if [[ ! -f $env_file ]]; then
	umask 077
	{
		echo "# made by up.sh: the gossip key, the first admin's password and the database password of this cluster"
		echo "OSPREY_GOSSIP_KEY=$(head -c 32 /dev/urandom | base64)"
		echo "OSPREY_ADMIN_PASSWORD=$(secret)"
		echo "OSPREY_DB_PASSWORD=$(secret)"
	} >"$env_file"
	echo "wrote $env_file (gossip key, admin password, database password)"
elif ! grep -q '^OSPREY_DB_PASSWORD=' "$env_file"; then
	# An .env of an earlier up.sh, from before PostgreSQL.
	echo "OSPREY_DB_PASSWORD=$(secret)" >>"$env_file"
	echo "added a database password to $env_file"
fi
compose() { $COMPOSE --env-file "$env_file" "$@"; }
ctl() { compose run --rm -T ctl "$@"; }
# The values compose will use, .env first, then the environment.
setting() { local v; v=$(sed -n "s/^$1=//p" "$env_file" | tail -n1); echo "${!1:-${v:-$2}}"; }
hq=$(setting OSPREY_HQ_NET 172.30.10)
branch=$(setting OSPREY_BRANCH_NET 172.30.20)
zone=$(setting OSPREY_ZONE osprey.internal.)
publish=$(setting OSPREY_ADMIN_PUBLISH 127.0.0.1:8443)

case ${1:-up} in
down) compose --profile client down --remove-orphans; exit ;;
destroy) compose --profile client down --remove-orphans --volumes; exit ;;
up) ;;
*) echo "usage: $0 [up|down|destroy]" >&2; exit 2 ;;
esac

for img in "$(setting OSPREY_IMAGE osprey:latest)" "$(setting OSPREY_CLIENT_IMAGE osprey-mailclient:latest)" "$(setting OSPREY_POSTGRES_IMAGE osprey-postgres:latest)"; do
	docker image inspect "$img" >/dev/null 2>&1 || { echo "no image $img: run make image first" >&2; exit 1; }
done

# PostgreSQL first: the centrals start once it answers (depends_on).
compose up -d central1 central2 central3
echo -n "waiting for the cluster"
for i in $(seq 90); do
	if ctl sensors list >/dev/null 2>&1; then break; fi
	[[ $i == 90 ]] && { echo; echo "the cluster did not answer in 3 minutes: $COMPOSE logs central1" >&2; exit 1; }
	echo -n .; sleep 2
done
echo

# SMTP on each central's own sensor, at its HQ address: smtp.<zone> names it.
for n in 1 2 3; do
	echo "{\"enabled\":true,\"listen\":\"$hq.1$n:25\",\"destination_domains\":[\"example.com\"],\"clients\":[\"$hq.0/24\"],\"max_message_size\":{\"value\":25,\"unit\":\"MB\"}}" |
		ctl sensor smtp set "central$n" --file - >/dev/null
done

# Branch sensors: a join token each on the first start, then approval.
sensor_id() { ctl sensors list | awk -v n="$1" '$2 == n {print $1; exit}'; }
for b in branch1 branch2; do
	id=$(sensor_id $b)
	if [[ -z $id ]]; then
		token=$(ctl tokens create join default 600 | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
		var=OSPREY_JOIN_TOKEN_${b^^}
		env "$var=$token" $COMPOSE --env-file "$env_file" up -d $b
		for i in $(seq 60); do
			id=$(sensor_id $b) && [[ -n $id ]] && break
			sleep 1
		done
		[[ -n $id ]] || { echo "$b did not enroll: $COMPOSE logs $b" >&2; exit 1; }
		echo "$b enrolled as $id; approving it"
		ctl sensor approve "$id" >/dev/null
	else
		compose up -d $b
	fi
	echo "{\"enabled\":true,\"listen\":\"0.0.0.0:25\",\"destination_domains\":[\"example.com\"],\"clients\":[\"$branch.0/24\",\"127.0.0.0/8\"],\"max_message_size\":{\"value\":25,\"unit\":\"MB\"}}" |
		ctl sensor smtp set "$id" --file - >/dev/null
done

echo "sending 5 messages to smtp.$zone through the cluster's DNS:"
for i in $(seq 30); do
	if compose run --rm mailclient --count 5 --run "up$(date +%s)"; then break; fi
	[[ $i == 30 ]] && { echo "the mail client could not send: is smtp.$zone answering?" >&2; exit 1; }
	sleep 2
done
ctl sensors list

cat <<MSG

Osprey is up (project $COMPOSE_PROJECT_NAME).

  Web UI and API:  https://$publish/  (self-signed certificate)
  Admin:           user "admin", password in $(realpath "$env_file") (OSPREY_ADMIN_PASSWORD)
  PostgreSQL:      $hq.5:5432, database and role osprey (OSPREY_DB_PASSWORD), from $hq.0/24
  Cluster DNS:     $hq.11:53, $hq.12:53, $hq.13:53, zone $zone
  Mail:            smtp.$zone port 25 (now: $hq.11-13, from $hq.0/24)
  Sensors connect: $branch.11-13:7443 (branch network)

  $COMPOSE --env-file $env_file run --rm ctl sensors list
  $COMPOSE --env-file $env_file run --rm mailclient --count 100
  $0 down
MSG
