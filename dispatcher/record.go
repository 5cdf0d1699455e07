package dispatcher

import (
	"context"
	"time"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 6, record: outcomes are written in batches (one statement for up to
// recordBatch outcomes or recordWait, whichever comes first), then their
// delivered / dead-lettered messages are published.

const (
	recordBatch = 500
	recordWait  = 10 * time.Millisecond
)

// result is an attempt's outcome with what publishing it needs.
type result struct {
	delivery store.Delivery
	outcome  store.Outcome
	reason   string // dead-letter reason
}

func (d *Dispatcher) record(ctx context.Context) {
	var pending []result
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(pending) == 0 {
			return
		}
		outcomes := make([]store.Outcome, len(pending))
		for i, r := range pending {
			outcomes[i] = r.outcome
		}
		backoff := 50 * time.Millisecond
		for {
			err := d.store.RecordOutcomes(ctx, outcomes)
			if err == nil {
				break
			}
			d.log.Error(err, "recording outcomes failed; retrying", "outcomes", len(outcomes))
			// Keep trying: until recorded, the claims keep others off these
			// deliveries; if we die, the claims lapse and they are retried.
			time.Sleep(backoff)
			backoff = min(2*backoff, 5*time.Second)
		}
		for _, r := range pending {
			d.metrics.Outcomes.WithLabelValues(r.outcome.Status).Inc()
		}
		d.publishOutcomes(ctx, pending)
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
