// Package inbound verifies the signatures payment providers put on the
// webhooks they send us: Stripe's Stripe-Signature (timestamped HMAC with a
// tolerance window) and PayFast's ITN signature (MD5 of the posted fields
// and the merchant's passphrase).
package inbound
