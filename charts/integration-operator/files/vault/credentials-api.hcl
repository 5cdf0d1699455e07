# Vault policy of the integration-operator credentials API: it keeps no
# secret in Vault (only bcrypt hashes in Postgres) and reads only the
# database URL, and only when DATABASE_URL is not set.
# Paths are for the default KV v2 mount (ss3/kv) and prefix
# (integration-service).

path "ss3/kv/data/integration-service/db.url" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/db.username" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/db.password" {
  capabilities = ["read"]
}
