package signing

import (
	"net/http"
	"strconv"
	"time"
)

// Headers of the platform's webhook contract.
const (
	HeaderEvent     = "X-SS3-Event"
	HeaderDelivery  = "X-SS3-Delivery"
	HeaderSignature = "X-SS3-Signature"
	// Standard Webhooks' headers, sent besides ours when chosen.
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Redacted stands for a signature wherever a delivery is shown rather than
// sent: a signature is as good as the secret for replaying its body.
const Redacted = "<redacted>"

// SetWebhookHeaders sets a webhook delivery's headers on h: the contract's
// and, with standardWebhooks, Standard Webhooks' for an attempt at at.
// With no secrets the signatures are Redacted: the delivery log shows the
// request as sent this way, from the one function that sends it.
func SetWebhookHeaders(h http.Header, deliveryID, eventType string, body []byte, standardWebhooks bool, at time.Time, secrets ...string) {
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "ss3-integration-dispatcher/1")
	h.Set(HeaderEvent, eventType)
	h.Set(HeaderDelivery, deliveryID)
	sign := func(v func() string) string {
		if len(secrets) == 0 {
			return Redacted
		}
		return v()
	}
	h.Set(HeaderSignature, sign(func() string { return SS3(body, secrets...) }))
	if standardWebhooks {
		h.Set(HeaderWebhookID, deliveryID)
		h.Set(HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
		h.Set(HeaderWebhookSignature, sign(func() string { return StandardWebhooks(deliveryID, at, body, secrets...) }))
	}
}
