package dispatcher

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 6, record: outcomes are written in batches (one transaction for up
// to recordBatch outcomes or recordWait, whichever comes first) with their
// delivered / dead-lettered notices, which are then published.

const (
	recordBatch = 500
	recordWait  = 10 * time.Millisecond
)

// result is an attempt's outcome with what publishing it needs.
type result struct {
	delivery store.Delivery
	outcome  store.Outcome
	reason   string // dead-letter reason
	// secretMissing: not attempted, for want of the signing secret in Vault.
	secretMissing bool
	// destinationDown: not attempted, for want of the queue destination.
	destinationDown string
}

// record runs until results closes. stopping closes when the dispatcher is
// shutting down: then a write that keeps failing is given up after a few
// tries (the claims lapse and another replica redoes the attempts).
func (d *Dispatcher) record(ctx context.Context, stopping <-chan struct{}) {
	var pending []result
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		for i := range pending {
			pending[i].outcome.Notice = d.notice(pending[i])
		}
		backoff := 50 * time.Millisecond
		todo := pending
		stale := map[uuid.UUID]bool{}
		// Recorded (or given up: their claims lapse), they are held no more.
		batch := pending
		defer func() {
			for _, r := range batch {
				d.held.drop(r.delivery.ID)
			}
		}()
		for try := 1; len(todo) > 0 && !d.cfg.Ephemeral; try++ {
			var err error
			if todo, err = d.writeOutcomes(ctx, todo, d.sent.take(), stale); err == nil {
				break
			}
			select {
			case <-stopping:
				if try >= 3 {
					d.log.Error(err, "recording outcomes failed at shutdown; their claims will lapse and they will be retried", "outcomes", len(todo))
					pending = pending[:0]
					return
				}
			default:
			}
			d.log.Error(err, "recording outcomes failed; retrying", "outcomes", len(todo))
			// Keep trying: until recorded, the claims keep others off these
			// deliveries; if we die, the claims lapse and they are retried.
			time.Sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
		}
		if len(stale) > 0 {
			d.metrics.StaleOutcomes.Add(float64(len(stale)))
			d.log.Info("outcomes not recorded: another replica took their claims over meanwhile", "outcomes", len(stale))
		}
		var notices []store.Notice
		for _, r := range pending {
			if stale[r.delivery.ID] {
				continue
			}
			d.metrics.Outcomes.WithLabelValues(r.outcome.Status).Inc()
			if r.outcome.Notice != nil {
				notices = append(notices, *r.outcome.Notice)
			}
		}
		d.sendNotices(ctx, notices)
		pending = pending[:0]
	}
	for {
		select {
		case r, ok := <-d.results:
			if !ok {
				flush()
				return
			}
			if len(pending) == 0 {
				timer.Reset(recordWait)
			}
			pending = append(pending, r)
			if len(pending) >= recordBatch {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}

// writeOutcomes records results with their stats and returns those still
// to write when an outage stopped it; it adds to stale those fenced off
// (their claim was lost: the new holder's outcome stands, and counts).
// Should Postgres refuse a batch for what it holds, the batch is halved
// until the outcome at fault is alone, and that one is recorded without
// the endpoint's answer: the delivery still ends, and nothing is retried
// for ever.
func (d *Dispatcher) writeOutcomes(ctx context.Context, results []result, sent []uuid.UUID, stale map[uuid.UUID]bool) ([]result, error) {
	err := d.writeBatch(ctx, results, sent, stale)
	switch {
	case err == nil:
		return nil, nil
	case !store.Refused(err):
		d.sent.add(sent...) // rolled back: for the next batch
		return results, err
	case len(results) == 1:
		d.metrics.RecordIsolations.Inc()
		r := results[0]
		why := "the endpoint's answer could not be stored: " + shortReason(err)
		r.outcome.ResponseBody, r.outcome.Error = nil, why
		if r.reason != "" {
			r.reason = why
			r.outcome.Notice = d.notice(r)
		}
		if err := d.writeBatch(ctx, []result{r}, sent, stale); err != nil {
			d.sent.add(sent...)
			if !store.Refused(err) {
				return results, err
			}
			// Only our own values are left; should even they be refused,
			// the claim lapses and another attempt is made.
			d.log.Error(err, "an outcome without the endpoint's answer was refused too", "deliveryId", r.delivery.ID)
		}
		return nil, nil
	}
	half := len(results) / 2
	rest, err := d.writeOutcomes(ctx, results[:half], sent, stale)
	if err != nil {
		return slices.Concat(rest, results[half:]), err
	}
	return d.writeOutcomes(ctx, results[half:], nil, stale)
}

// writeBatch is one transaction: the outcomes still fenced by their
// claims, the stats of those, and the removal of sent notices.
func (d *Dispatcher) writeBatch(ctx context.Context, results []result, sent []uuid.UUID, stale map[uuid.UUID]bool) error {
	fenced, err := d.store.RecordOutcomeBatch(ctx, outcomesOf(results), func(fenced map[uuid.UUID]bool) []store.StatsDelta {
		if len(fenced) == 0 {
			return statsDeltas(results)
		}
		return statsDeltas(slices.DeleteFunc(slices.Clone(results), func(r result) bool { return fenced[r.delivery.ID] }))
	}, sent)
	if err == nil {
		maps.Copy(stale, fenced)
	}
	return err
}

func outcomesOf(results []result) []store.Outcome {
	outcomes := make([]store.Outcome, len(results))
	for i, r := range results {
		outcomes[i] = r.outcome
	}
	return outcomes
}

// statsDeltas sums a batch's attempts per subscription, in arrival order;
// outcomes that made no attempt (our own outage) do not count, except an
// end without an attempt (a deleted or long-paused subscription), a
// signing secret missing from Vault (for the manager to restore) and a
// queue destination out of reach (for the status, and to bound the wait).
func statsDeltas(results []result) []store.StatsDelta {
	bySub := map[uuid.UUID]*store.StatsDelta{}
	var order []uuid.UUID
	for _, r := range results {
		attempted := r.outcome.Attempts != r.delivery.Attempts
		if !attempted && r.outcome.Status != store.DeliveryDeadLettered && !r.secretMissing && r.destinationDown == "" {
			continue
		}
		d := bySub[r.delivery.SubscriptionID]
		if d == nil {
			d = &store.StatsDelta{SubscriptionID: r.delivery.SubscriptionID}
			bySub[r.delivery.SubscriptionID] = d
			order = append(order, r.delivery.SubscriptionID)
		}
		d.LastError = r.outcome.Error
		d.SecretMissing = d.SecretMissing || r.secretMissing
		if r.destinationDown != "" {
			d.DestinationDown = r.destinationDown
		}
		if attempted {
			d.LastAttemptAt = time.Now()
			d.LastHTTPStatus = r.outcome.HTTPStatus
		}
		switch r.outcome.Status {
		case store.DeliveryDelivered:
			d.Delivered++
			d.TrailingFailures = 0
			continue
		case store.DeliveryDeadLettered:
			d.DeadLettered++
			d.DeadLetterReason = r.reason
		}
		if attempted {
			d.FailedAttempts++
			d.TrailingFailures++
		}
	}
	out := make([]store.StatsDelta, 0, len(order))
	for _, id := range order {
		out = append(out, *bySub[id])
	}
	return out
}
