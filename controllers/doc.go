// Package controllers holds the manager's reconcilers, one per kind, which
// turn WebhookSubscription, ApiCredential and ConnectorConfig objects into
// Vault secrets and Postgres rows and report back on their status.
package controllers
