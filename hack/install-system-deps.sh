#!/usr/bin/env bash
# Installs the system packages the tests use, from Debian's archive, when they
# are missing: PostgreSQL 15 (server binaries; the test bed starts its own
# clusters), kubectl (kubernetes-client), nginx (the gateway in front of
# the credentials API in its auth_request test), curl (the e2e test) and
# Prometheus with promtool (the alert rules' tests, a scrape of the running
# components) and ActiveMQ (the STOMP broker queue destinations are tested
# against; the test bed runs its own). Needs root or passwordless sudo.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v kubectl >/dev/null 2>&1 || need+=(kubernetes-client)
[[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || need+=(prometheus)
[[ -f /usr/share/activemq/bin/activemq.jar ]] || need+=(activemq)
[[ ${#need[@]} -eq 0 ]] && exit 0

sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "installing ${need[*]}" >&2
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
# Debian starts system services on install; the tests start their own.
if [[ " ${need[*]} " == *" nginx-light "* ]]; then
  $sudo service nginx stop >/dev/null 2>&1 || true
fi
if [[ " ${need[*]} " == *" prometheus "* ]]; then
  $sudo service prometheus stop >/dev/null 2>&1 || true
fi
if [[ " ${need[*]} " == *" activemq "* ]]; then
  $sudo service activemq stop >/dev/null 2>&1 || true
fi
if [[ " ${need[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
  $sudo pg_dropcluster --stop 15 main >/dev/null 2>&1 || true
fi
