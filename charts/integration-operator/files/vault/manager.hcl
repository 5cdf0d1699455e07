# Vault policy of the integration-operator manager: it writes, reads back
# and deletes the signing secrets and connector credentials it reconciles,
# lists their folders for the orphan sweep, and reads the database settings.
# Paths are for the default KV v2 mount (ss3/kv) and prefix
# (integration-service); change them here if you change --vault-kv-mount or
# --vault-kv-prefix.

# Signing secrets: written on reconcile, read back to repair drift.
path "ss3/kv/data/integration-service/webhook/+/secret" {
  capabilities = ["create", "read", "update"]
}
# Deleted, every version, by the finalizer and the orphan sweep.
path "ss3/kv/metadata/integration-service/webhook/+/secret" {
  capabilities = ["delete"]
}
# Queue destinations' credentials, copied from the subscription's Secret.
path "ss3/kv/data/integration-service/webhook/+/destination" {
  capabilities = ["create", "read", "update"]
}
path "ss3/kv/metadata/integration-service/webhook/+/destination" {
  capabilities = ["delete"]
}

# Connector credentials, copied from the ConnectorConfig's Secret.
path "ss3/kv/data/integration-service/connector/+/api-key" {
  capabilities = ["create", "read", "update"]
}
path "ss3/kv/data/integration-service/connector/+/api-secret" {
  capabilities = ["create", "read", "update"]
}
path "ss3/kv/data/integration-service/connector/+/refresh-token" {
  capabilities = ["create", "read", "update"]
}
path "ss3/kv/metadata/integration-service/connector/+/api-key" {
  capabilities = ["delete"]
}
path "ss3/kv/metadata/integration-service/connector/+/api-secret" {
  capabilities = ["delete"]
}
path "ss3/kv/metadata/integration-service/connector/+/refresh-token" {
  capabilities = ["delete"]
}

# The orphan sweep lists what was written for objects that may be gone.
path "ss3/kv/metadata/integration-service/webhook/" {
  capabilities = ["list"]
}
path "ss3/kv/metadata/integration-service/connector/" {
  capabilities = ["list"]
}

# The database URL, when DATABASE_URL is not set.
path "ss3/kv/data/integration-service/db.url" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/db.username" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/db.password" {
  capabilities = ["read"]
}
