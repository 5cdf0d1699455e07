#!/bin/sh
# Writes the three components' Vault policies (the .hcl files beside this
# script) and one Kubernetes auth role each, bound to that component's
# ServiceAccount alone. Run with VAULT_ADDR and an admin VAULT_TOKEN, after
# the Kubernetes auth method is enabled and configured
# (docs/least-privilege.md).
#
#   NAMESPACE    namespace of the ServiceAccounts (integration-operator)
#   SA_PREFIX    their name prefix: "integration-operator-" for config/default,
#                "<release>-" for the chart
#   AUTH_MOUNT   mount of the Kubernetes auth method (kubernetes)
#   AUDIENCE     audience of the projected tokens the pods present (vault)
set -eu
NAMESPACE=${NAMESPACE:-integration-operator}
SA_PREFIX=${SA_PREFIX:-integration-operator-}
AUTH_MOUNT=${AUTH_MOUNT:-kubernetes}
AUDIENCE=${AUDIENCE:-vault}
dir=$(dirname "$0")

for component in manager dispatcher credentials-api; do
	vault policy write "integration-operator-$component" "$dir/$component.hcl"
	vault write "auth/$AUTH_MOUNT/role/integration-operator-$component" \
		bound_service_account_names="$SA_PREFIX$component" \
		bound_service_account_namespaces="$NAMESPACE" \
		audience="$AUDIENCE" \
		token_policies="integration-operator-$component" \
		token_ttl=1h token_max_ttl=4h
done
