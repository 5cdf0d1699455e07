package dispatcher

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 5, retry: the platform's schedule judges each attempt, and a
// scheduler claims due deliveries (FOR UPDATE SKIP LOCKED, under a short
// lease renewed while held: see hold.go) so replicas share them and a dead
// replica's claims are taken over within a lease.

// judge turns an attempt's result into the outcome to record.
func (d *Dispatcher) judge(del store.Delivery, r attemptResult) (store.Outcome, string) {
	o := store.Outcome{DeliveryID: del.ID, EventTime: del.EventTime, Attempts: del.Attempts, ClaimToken: del.ClaimToken}
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
	o.Attempt = &store.Attempt{StartedAt: r.started, Duration: r.took, Replica: d.cfg.Replica}
	if r.status != 0 {
		o.HTTPStatus = ptr(r.status)
		o.ResponseBody = ptr(r.body)
	}
	switch {
	case r.err == nil && (r.sent || r.status >= 200 && r.status < 300):
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
			sent := time.Now()
			claimCtx, cancel := d.claiming(ctx)
			due, err := d.store.ClaimDue(claimCtx, free, d.cfg.ClaimLease)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "claiming due deliveries failed; will retry")
				}
				break
			}
			for _, del := range due {
				d.held.add(sent, del.Held())
			}
			if err := d.fillDestinations(ctx, due); err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "reading the claimed deliveries' destinations failed; will retry")
				}
				d.release(d.held, heldOf(due)) // for the next poll, now
				break
			}
			for i, del := range due {
				select {
				case d.jobs <- del:
				case <-ctx.Done():
					d.release(d.held, heldOf(due[i:])) // for another replica, now
					return
				}
			}
			if len(due) < free {
				break
			}
		}
	}
}

// endAbandoned ends, every few seconds, the waiting deliveries of deleted
// subscriptions, of subscriptions paused for longer than PausedMaxAge, and
// of those whose signing secret has been missing for SecretMissingMaxAge
// or whose queue destination has been down for DestinationDownMaxAge:
// dead-lettered with the reason, through the record stage, so the stats,
// the Events and the outcome notices say so. No attempt is spent on them.
func (d *Dispatcher) endAbandoned(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		for ctx.Err() == nil {
			sent := time.Now()
			gone, err := d.store.ClaimAbandoned(ctx, 500, store.AbandonAfter{Paused: d.cfg.PausedMaxAge,
				SecretMissing: d.cfg.SecretMissingMaxAge, DestinationDown: d.cfg.DestinationDownMaxAge}, d.cfg.ClaimLease)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "claiming abandoned deliveries failed; will retry")
				}
				return
			}
			for _, a := range gone {
				d.held.add(sent, a.Held())
				why := fmt.Sprintf("%s; %d attempts were made", a.Why, a.Attempts)
				o := store.Outcome{DeliveryID: a.ID, EventTime: a.EventTime, Status: store.DeliveryDeadLettered, Attempts: a.Attempts, Error: why, ClaimToken: a.ClaimToken}
				select {
				case d.results <- result{delivery: a.Delivery, outcome: o, reason: why}:
				case <-ctx.Done():
					return // the claims lapse and are taken again
				}
			}
			if len(gone) < 500 {
				break
			}
		}
		d.endAbandonedConnectorWork(ctx)
	}, abandonedCheck)
}

// endAbandonedConnectorWork does the same for connectors' waiting events.
func (d *Dispatcher) endAbandonedConnectorWork(ctx context.Context) {
	for ctx.Err() == nil {
		gone, err := d.store.ClaimAbandonedConnectorDeliveries(ctx, 500, d.cfg.PausedMaxAge, d.cfg.ClaimLease)
		if err != nil || len(gone) == 0 {
			if err != nil && ctx.Err() == nil {
				d.log.Error(err, "claiming abandoned connector events failed; will retry")
			}
			return
		}
		outcomes := make([]store.ConnectorOutcome, len(gone))
		for i, a := range gone {
			outcomes[i] = store.ConnectorOutcome{DeliveryID: a.DeliveryID, EventTime: a.EventTime, ConfigID: a.ConfigID, Status: store.DeliveryDeadLettered,
				Attempts: a.Attempts, Error: fmt.Sprintf("%s; %d attempts were made", a.Why, a.Attempts), Attempted: true, ClaimToken: a.ClaimToken}
		}
		if err := d.store.RecordConnectorOutcomes(ctx, outcomes, nil); err != nil {
			d.log.Error(err, "ending abandoned connector events failed; their claims lapse and they are taken again")
			return
		}
		if len(gone) < 500 {
			return
		}
	}
}

// abandonedCheck is how often deleted and long-paused work is looked for.
const abandonedCheck = 5 * time.Second

func ptr[T any](v T) *T { return &v }
