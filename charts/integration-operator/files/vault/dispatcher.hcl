# Vault policy of the integration-operator dispatcher: read-only, on exactly
# what it reads. It signs deliveries with the subscriptions' signing secrets,
# calls marketplaces and verifies providers' webhooks with the connectors'
# credentials, and reads the database and Kafka settings. It takes untrusted
# HTTP, so it can neither write nor list.
# Paths are for the default KV v2 mount (ss3/kv) and prefix
# (integration-service).

path "ss3/kv/data/integration-service/webhook/+/secret" {
  capabilities = ["read"]
}
# Queue destinations' credentials (SQS access key, STOMP login).
path "ss3/kv/data/integration-service/webhook/+/destination" {
  capabilities = ["read"]
}

path "ss3/kv/data/integration-service/connector/+/api-key" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/connector/+/api-secret" {
  capabilities = ["read"]
}
path "ss3/kv/data/integration-service/connector/+/refresh-token" {
  capabilities = ["read"]
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

# Kafka bootstrap servers, when KAFKA_BROKERS is not set.
path "ss3/kv/data/shared/kafka" {
  capabilities = ["read"]
}

# The platform's shared OpenTelemetry settings, when neither --otlp-endpoint
# nor OTEL_EXPORTER_OTLP_ENDPOINT is set.
path "ss3/kv/data/shared/otel" {
  capabilities = ["read"]
}
