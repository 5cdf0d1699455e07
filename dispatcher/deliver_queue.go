package dispatcher

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/destinations/sqs"
	"github.com/ss3dev/integration-operator/internal/destinations/stomp"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Stage 4, deliver, to a queue: a subscription whose destination is an
// SQS queue or a STOMP broker gets the same payload and signature as a
// webhook, as a message with the event id, type, delivery id and
// signature beside it. A broker that cannot be reached (a certificate
// that does not verify included), or credentials missing from Vault, are
// our outage (no attempt spent, and the stats say since when, which
// bounds the wait); refused credentials are a failed attempt, recorded
// with destinations.CredentialsRejectedPrefix for the status report.

// sqsLinger is how long an SQS send waits for others to the same queue
// to share its SendMessageBatch.
const sqsLinger = 5 * time.Millisecond

// queueSenders holds the senders and the destinations' credentials.
type queueSenders struct {
	vault *vault.Client
	creds *expirable.LRU[uuid.UUID, map[string]string]
	sqs   *sqs.Sender
	stomp *stomp.Sender
}

// newQueueSenders: brokers' and SQS endpoints' certificates are verified
// against roots (nil: the system's CAs), which client is built with.
func newQueueSenders(v *vault.Client, client *http.Client, dialer *net.Dialer, roots *x509.CertPool, ttl time.Duration) *queueSenders {
	return &queueSenders{vault: v, creds: expirable.NewLRU[uuid.UUID, map[string]string](maxCachedSecrets, nil, ttl),
		sqs: sqs.New(client, sqsLinger), stomp: stomp.New(dialer, roots)}
}

func (q *queueSenders) close() { q.stomp.Close() }

// credentials reads a subscription's destination credentials from Vault
// (webhook/<id>/destination, copied there by the manager), cached briefly.
func (q *queueSenders) credentials(ctx context.Context, id uuid.UUID) (map[string]string, error) {
	if c, ok := q.creds.Get(id); ok {
		return c, nil
	}
	data, _, err := q.vault.Get(ctx, "webhook/"+id.String()+"/destination")
	if err != nil {
		return nil, err
	}
	q.creds.Add(id, data)
	return data, nil
}

// attemptQueue makes one attempt at a queue destination.
func (d *Dispatcher) attemptQueue(ctx context.Context, del store.Delivery, secrets []string) attemptResult {
	dest := del.Destination
	msg := destinations.Message{DeliveryID: del.ID.String(), EventID: del.EventID.String(), EventType: del.EventType,
		StoreID: del.StoreID, Body: del.Payload, Signature: signing.SS3(del.Payload, secrets...)}
	needsCreds := dest.Kind == store.DestinationSQS || dest.STOMP != nil && dest.STOMP.Login
	var creds map[string]string
	if needsCreds {
		var err error
		if creds, err = d.queues.credentials(ctx, del.SubscriptionID); err != nil {
			// The manager copies them; its status says when it cannot.
			r := attemptResult{err: fmt.Errorf("the destination's credentials are unavailable: %w", err), outage: true}
			if errors.Is(err, vault.ErrNotFound) {
				r.destinationDown = store.DestinationCredentialsMissing
			}
			return r
		}
	}
	start := time.Now()
	var err error
	switch {
	case dest.Kind == store.DestinationSQS && dest.SQS != nil:
		err = d.queues.sqs.Send(ctx, sqs.Queue{Region: dest.SQS.Region, QueueURL: dest.SQS.QueueURL, MessageGroupID: dest.SQS.MessageGroupID,
			AccessKeyID: creds[destinations.FieldAccessKeyID], SecretAccessKey: creds[destinations.FieldSecretAccessKey]}, msg)
	case dest.Kind == store.DestinationSTOMP && dest.STOMP != nil:
		err = d.queues.stomp.Send(ctx, stomp.Broker{Address: dest.STOMP.Address, TLS: dest.STOMP.TLS, Login: creds[destinations.FieldLogin],
			Passcode: creds[destinations.FieldPasscode], Destination: dest.STOMP.Destination, Headers: dest.STOMP.Headers}, msg)
	default:
		err = fmt.Errorf("unknown destination kind %q", dest.Kind)
	}
	d.metrics.Latency.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		return attemptResult{sent: true}
	case errors.Is(err, destinations.ErrUnreachable):
		return attemptResult{err: err, outage: true, destinationDown: store.DestinationUnreachable}
	}
	return attemptResult{err: err}
}

// fillDestinations sets the destination of claimed deliveries whose
// subscription delivers to a queue (claims carry only the HTTP settings).
func (d *Dispatcher) fillDestinations(ctx context.Context, due []store.Delivery) error {
	if len(due) == 0 {
		return nil
	}
	seen := map[uuid.UUID]bool{}
	var ids []uuid.UUID
	for _, del := range due {
		if !seen[del.SubscriptionID] {
			seen[del.SubscriptionID] = true
			ids = append(ids, del.SubscriptionID)
		}
	}
	dests, err := d.store.SubscriptionDestinations(ctx, ids)
	if err != nil {
		return err
	}
	for i := range due {
		due[i].Destination = dests[due[i].SubscriptionID]
	}
	return nil
}
