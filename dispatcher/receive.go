package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 0, receive: payment providers' webhooks arrive at
// POST /connectors/{configId}/webhook. The connector's adapter verifies the
// request; a rejected one is counted (and shown on the ConnectorConfig) and
// answered 400. A genuine one is stored once, keyed by the provider's event
// id (a replay is answered 200 and stored no more), then published to Kafka;
// when Kafka does not take it, the relay below retries until it does.

const (
	maxInboundBody = 1 << 20
	inboundLease   = time.Minute
)

// InboundHandler serves the providers' webhooks.
func (d *Dispatcher) InboundHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /connectors/{configId}/webhook", d.receive)
	return mux
}

func (d *Dispatcher) receive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := uuid.Parse(r.PathValue("configId"))
	if err != nil {
		http.Error(w, "unknown connector", http.StatusNotFound)
		return
	}
	cfg, ok, err := d.store.GetConnectorConfig(ctx, id)
	if err != nil {
		d.log.Error(err, "reading a connector for an inbound webhook failed", "configId", id)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	if !ok || !cfg.IsActive {
		http.Error(w, "unknown connector", http.StatusNotFound)
		return
	}
	adapter, err := d.opener.Open(cfg.ID, cfg.StoreID, cfg.ConnectorType, cfg.Settings)
	if err != nil {
		http.Error(w, "the connector is misconfigured", http.StatusServiceUnavailable)
		return
	}
	receiver, ok := adapter.(connectors.Receiver)
	if !ok {
		http.Error(w, "this connector does not receive webhooks", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInboundBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	remote, _, _ := net.SplitHostPort(r.RemoteAddr)
	ev, err := receiver.Receive(ctx, connectors.InboundRequest{Header: r.Header, Body: body, RemoteIP: remote})
	var rejection *connectors.Rejection
	if errors.As(err, &rejection) {
		d.metrics.InboundWebhooks.WithLabelValues(cfg.ConnectorType, "rejected").Inc()
		d.log.Info("inbound webhook rejected", "configId", id, "type", cfg.ConnectorType, "reason", rejection.Reason)
		if err := d.store.CountInboundRejected(ctx, id, rejection.Reason); err != nil {
			d.log.Error(err, "counting a rejected webhook failed", "configId", id)
		}
		http.Error(w, "rejected: "+rejection.Reason, http.StatusBadRequest)
		return
	}
	if err != nil {
		// Ours to fix (Vault, the provider's confirmation call): the
		// provider sends it again.
		d.metrics.InboundWebhooks.WithLabelValues(cfg.ConnectorType, "error").Inc()
		d.log.Error(err, "processing an inbound webhook failed; the provider will retry", "configId", id)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	stored := store.InboundEvent{EventID: uuid.NewSHA1(inboundNamespace, []byte(id.String()+"/"+ev.ProviderID)), ConfigID: id,
		ProviderEventID: ev.ProviderID, EventType: ev.Type, StoreID: cfg.StoreID, Payload: ev.Data, ReceivedAt: time.Now()}
	inserted, err := d.store.InsertInboundEvent(ctx, stored, inboundLease)
	if err != nil {
		d.metrics.InboundWebhooks.WithLabelValues(cfg.ConnectorType, "error").Inc()
		d.log.Error(err, "storing an inbound webhook failed; the provider will retry", "configId", id)
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !inserted {
		d.metrics.InboundWebhooks.WithLabelValues(cfg.ConnectorType, "duplicate").Inc()
		_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "duplicate": true})
		return
	}
	d.metrics.InboundWebhooks.WithLabelValues(cfg.ConnectorType, "accepted").Inc()
	// Stored: answer 200 whatever Kafka says; the relay owns retrying.
	d.publishInbound(context.WithoutCancel(ctx), []store.InboundEvent{stored})
	_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "eventId": stored.EventID})
}

// inboundNamespace makes a provider event's platform event id stable.
var inboundNamespace = uuid.MustParse("9d3c1f0e-2a4b-4c6d-8e0f-1a2b3c4d5e6f")

// publishInbound publishes stored provider events and records the result.
func (d *Dispatcher) publishInbound(ctx context.Context, stored []store.InboundEvent) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events := make([]connectors.Event, len(stored))
	for i, s := range stored {
		events[i] = connectors.Event{ID: s.EventID, Type: s.EventType, StoreID: s.StoreID, Time: s.ReceivedAt, Data: s.Payload}
	}
	if err := d.PublishEvents(ctx, events); err != nil {
		d.log.Error(err, "publishing inbound events failed; will retry", "events", len(events))
		if err := d.store.InboundPublishFailed(ctx, stored, err.Error(), d.cfg.OutageRetry); err != nil {
			d.log.Error(err, "scheduling the retry failed; the claim will lapse and the relay retry")
		}
		return
	}
	if err := d.store.MarkInboundPublished(ctx, stored); err != nil {
		d.log.Error(err, "marking inbound events published failed; they may be published twice (same event ids)")
	}
}

// relay publishes stored provider events that did not reach Kafka (or whose
// replica died first), every PollCheck until ctx ends.
func (d *Dispatcher) relay(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		due, err := d.store.ClaimUnpublishedInbound(ctx, 100, inboundLease)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error(err, "claiming unpublished inbound events failed; will retry")
			}
			return
		}
		if len(due) > 0 {
			d.publishInbound(ctx, due)
		}
	}, d.cfg.Connectors.PollCheck)
}
