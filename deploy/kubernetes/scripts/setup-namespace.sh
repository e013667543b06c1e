#!/bin/sh
# Creates the engine's Temporal namespace and registers its search attributes; idempotent.
# Runs in the temporalio/admin-tools image (the `temporal` CLI), as the temporal-setup job of
# deploy/compose and the orchestrator-temporal-setup Job of deploy/kubernetes (the two copies
# are kept identical by tests/deploy).
#
# Connection: the engine's variables (engine/hosting/connection.py): TEMPORAL_ADDRESS,
# TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CERT / _KEY / _CA, TEMPORAL_TLS_SERVER_NAME.
#   TEMPORAL_NAMESPACE            the namespace to set up (required)
#   TEMPORAL_NAMESPACE_RETENTION  retention of a namespace this creates (default 7d)
#   SKIP_NAMESPACE_CREATE=true    the namespace is made elsewhere (Temporal Cloud, Terraform)
set -eu

: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:?}"
: "${TEMPORAL_NAMESPACE_RETENTION:=7d}"
: "${SKIP_NAMESPACE_CREATE:=false}"
# The engine's custom search attributes (engine/temporal/telemetry.py), NAME=TYPE.
SEARCH_ATTRIBUTES="OrchestratorWorkflowId=Keyword OrchestratorStatus=Keyword"

# The CLI names the certificate files differently from the engine.
if [ -n "${TEMPORAL_TLS_CERT:-}" ]; then export TEMPORAL_TLS_CLIENT_CERT_PATH="$TEMPORAL_TLS_CERT"; fi
if [ -n "${TEMPORAL_TLS_KEY:-}" ]; then export TEMPORAL_TLS_CLIENT_KEY_PATH="$TEMPORAL_TLS_KEY"; fi
if [ -n "${TEMPORAL_TLS_CA:-}" ]; then export TEMPORAL_TLS_SERVER_CA_CERT_PATH="$TEMPORAL_TLS_CA"; fi

# retry DESCRIPTION COMMAND...: a fresh server, or a namespace created a moment ago, may not
# answer yet (the frontend refreshes its namespace cache every few seconds).
retry() {
  what=$1
  shift
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge 60 ]; then
      echo "gave up: ${what} (${attempt} attempts)" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

echo "waiting for Temporal at ${TEMPORAL_ADDRESS}"
retry "Temporal at ${TEMPORAL_ADDRESS} is healthy" temporal operator cluster health

if [ "$SKIP_NAMESPACE_CREATE" = "true" ]; then
  echo "namespace ${TEMPORAL_NAMESPACE}: not created here (SKIP_NAMESPACE_CREATE)"
elif temporal operator namespace describe --namespace "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  echo "namespace ${TEMPORAL_NAMESPACE} exists"
else
  temporal operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
    --retention "$TEMPORAL_NAMESPACE_RETENTION"
  echo "namespace ${TEMPORAL_NAMESPACE} created (retention ${TEMPORAL_NAMESPACE_RETENTION})"
fi

list_attributes() {
  existing=$(temporal operator search-attribute list --namespace "$TEMPORAL_NAMESPACE")
}
create_attribute() {
  temporal operator search-attribute create --namespace "$TEMPORAL_NAMESPACE" \
    --name "$1" --type "$2"
}
retry "list the search attributes of ${TEMPORAL_NAMESPACE}" list_attributes
for attribute in $SEARCH_ATTRIBUTES; do
  name=${attribute%%=*}
  type=${attribute#*=}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute ${name} exists"
  else
    retry "register search attribute ${name}" create_attribute "$name" "$type"
    echo "search attribute ${name} (${type}) registered"
  fi
done
