package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 5, retry: the platform's schedule judges each attempt, and a
// scheduler claims due deliveries (FOR UPDATE SKIP LOCKED, with a lease that
// outlives any attempt) so replicas share them and a dead replica's claims
// are taken over.

// judge turns an attempt's result into the outcome to record.
func (d *Dispatcher) judge(del store.Delivery, r attemptResult) (store.Outcome, string) {
	o := store.Outcome{DeliveryID: del.ID, Attempts: del.Attempts}
	if r.waitFor > 0 {
		o.Status = pendingOrFailed(del.Attempts)
		o.RetryIn = ptr(r.waitFor)
		o.Error = r.err.Error()
		return o, ""
	}
	if r.outage {
		// Not the endpoint's fault: no attempt is burnt.
		o.Status = pendingOrFailed(del.Attempts)
		o.RetryIn = ptr(d.cfg.OutageRetry)
		o.Error = r.err.Error()
		return o, ""
	}
	o.Attempts = del.Attempts + 1
	if r.status != 0 {
		o.HTTPStatus = ptr(r.status)
		o.ResponseBody = ptr(r.body)
	}
	switch {
	case r.err == nil && r.status >= 200 && r.status < 300:
		o.Status = store.DeliveryDelivered
		return o, ""
	case r.err == nil && r.status == 410:
		o.Status = store.DeliveryDeadLettered
		o.Error = "the endpoint answered 410 Gone: it no longer accepts deliveries"
		return o, o.Error
	}
	if r.err != nil {
		o.Error = r.err.Error()
	} else {
		o.Error = fmt.Sprintf("the endpoint answered %d", r.status)
	}
	if o.Attempts >= len(d.cfg.RetrySchedule) {
		o.Status = store.DeliveryDeadLettered
		reason := fmt.Sprintf("%d attempts failed; last: %s", o.Attempts, o.Error)
		return o, reason
	}
	wait := d.cfg.RetrySchedule[o.Attempts]
	if (r.status == 429 || r.status == 503) && r.retryAfter > wait {
		// Honour Retry-After, but within the schedule's bounds.
		wait = min(r.retryAfter, d.cfg.RetrySchedule[len(d.cfg.RetrySchedule)-1])
	}
	o.Status = store.DeliveryFailed
	o.RetryIn = &wait
	return o, ""
}

func pendingOrFailed(attempts int) string {
	if attempts == 0 {
		return store.DeliveryPending
	}
	return store.DeliveryFailed
}

// schedule claims due deliveries every PollInterval until ctx ends.
func (d *Dispatcher) schedule(ctx context.Context) {
	t := time.NewTicker(d.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			// Claim no more than the workers can start soon, so claims do not
			// sit in memory while their leases run.
			free := cap(d.jobs) - len(d.jobs)
			if free <= 0 {
				break
			}
			due, err := d.store.ClaimDue(ctx, free, d.cfg.ClaimLease)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "claiming due deliveries failed; will retry")
				}
				break
			}
			for _, del := range due {
				select {
				case d.jobs <- del:
				case <-ctx.Done():
					return
				}
			}
			if len(due) < free {
				break
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
