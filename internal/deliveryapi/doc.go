// Package deliveryapi is the delivery API server: an aggregated Kubernetes
// API (k8s.io/apiserver, registered with an APIService, as metrics-server
// is) that serves the delivery log from Postgres as read-only resources
// with field selectors, paging and watch, so that kubectl get, describe,
// -o yaml and -w work on deliveries as on any resource; and two create-only
// actions, a test event and a re-trigger.
//
// Kubernetes decides who sees what: the API server in front authorizes the
// verb on the delivery resource, and this server lets a user see the
// deliveries of a WebhookSubscription (or ConnectorConfig) only if that
// user may get it.
package deliveryapi
