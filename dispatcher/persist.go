package dispatcher

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 3, persist: a batch's deliveries, to webhooks and to connectors,
// are written in one statement each, claimed by this replica (the store
// keeps each payload as its bytes, so Postgres takes any JSON). Should
// Postgres still refuse a batch for what it holds, each message is written
// alone, and a message Postgres refuses by itself is set aside as poison
// with the reason: one bad event costs only itself, and the batch never
// retries for a reason retrying cannot cure.

// persist writes the deliveries of msgs, claimed under claim, and returns
// the ids it inserted (a replayed batch inserts none). It marks messages
// Postgres refuses as poison; its error is an outage, for the caller to
// retry.
func (d *Dispatcher) persist(ctx context.Context, msgs []routed, claim store.Claim) (map[uuid.UUID]bool, error) {
	inserted := map[uuid.UUID]bool{}
	if d.cfg.Ephemeral {
		for _, m := range msgs {
			for _, nd := range m.deliveries {
				inserted[nd.ID] = true
			}
		}
		return inserted, nil
	}
	err := d.persistTogether(ctx, msgs, claim, inserted)
	if err == nil || !store.Refused(err) {
		return inserted, err
	}
	d.log.Info("Postgres refused a batch; writing its messages one by one", "messages", len(msgs), "reason", err.Error())
	for i := range msgs {
		m := &msgs[i]
		if m.poison != nil {
			continue
		}
		err := d.persistTogether(ctx, msgs[i:i+1], claim, inserted)
		if err != nil && store.Refused(err) {
			m.poison = fmt.Errorf("Postgres refused its deliveries: %w", err)
			m.jobs = nil
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return inserted, nil
}

func (d *Dispatcher) persistTogether(ctx context.Context, msgs []routed, claim store.Claim, inserted map[uuid.UUID]bool) error {
	var deliveries []store.NewDelivery
	var toConnectors []store.NewConnectorDelivery
	for _, m := range msgs {
		if m.poison == nil {
			deliveries = append(deliveries, m.deliveries...)
			toConnectors = append(toConnectors, m.connectors...)
		}
	}
	// Connector work first: a failure here then leaves no webhook delivery
	// claimed but unsent.
	if err := d.store.InsertConnectorDeliveries(ctx, toConnectors); err != nil {
		return err
	}
	ids, err := d.store.InsertDeliveries(ctx, deliveries, claim)
	if err != nil {
		return err
	}
	for _, id := range ids {
		inserted[id] = true
	}
	return nil
}
