package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 8, connect: events queued for connectors are claimed in batches
// (FOR UPDATE SKIP LOCKED, like webhook retries, and held the same way:
// renewed while they wait for a worker), grouped by connector and handed
// to its adapter by a separate pool of workers, so a slow or failing
// marketplace never holds up webhook delivery. One entity's events (a
// SKU's, an order's) are claimed one at a time in arrival order, across
// replicas, so a marketplace sees them in event order. Failures retry on
// the connector schedule; each batch writes its outcomes, one sync-log row
// per entity type and the connector's counts in one transaction.

// connect claims and hands out connector work every PollCheck until ctx ends.
func (d *Dispatcher) connect(ctx context.Context) {
	slots := make(chan struct{}, d.cfg.Connectors.Workers)
	var running sync.WaitGroup
	defer running.Wait()
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		for ctx.Err() == nil {
			sent := time.Now()
			claimCtx, cancel := d.claiming(ctx)
			claimed, err := d.store.ClaimConnectorDeliveries(claimCtx, d.cfg.Connectors.BatchSize, d.cfg.ClaimLease)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "claiming connector work failed; will retry")
				}
				return
			}
			for _, del := range claimed {
				d.connectorHeld.add(sent, del.Held())
			}
			batches := byConfig(claimed)
			for i, batch := range batches {
				if ctx.Err() != nil {
					d.release(d.connectorHeld, heldOf(slices.Concat(batches[i:]...))) // for another replica, now
					return
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					d.release(d.connectorHeld, heldOf(slices.Concat(batches[i:]...))) // for another replica, now
					return
				}
				running.Go(func() {
					defer func() { <-slots }()
					d.handleBatch(context.WithoutCancel(ctx), batch)
				})
			}
			if len(claimed) < d.cfg.Connectors.BatchSize {
				return
			}
		}
	}, d.cfg.Connectors.PollCheck)
}

// byConfig groups claimed deliveries by connector, oldest first within each.
func byConfig(ds []store.ConnectorDelivery) [][]store.ConnectorDelivery {
	index := map[uuid.UUID]int{}
	var groups [][]store.ConnectorDelivery
	for _, d := range ds {
		i, ok := index[d.ConfigID]
		if !ok {
			i = len(groups)
			index[d.ConfigID] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], d)
	}
	return groups
}

// handleBatch gives one connector's events to its adapter and records what
// became of each. Events whose claim may have lapsed while they waited are
// left to whoever holds them now.
func (d *Dispatcher) handleBatch(ctx context.Context, batch []store.ConnectorDelivery) {
	defer func() {
		for _, del := range batch {
			d.connectorHeld.drop(del.ID)
		}
	}()
	batch = slices.DeleteFunc(batch, func(del store.ConnectorDelivery) bool {
		if d.connectorHeld.lapsed(del.ID) {
			d.metrics.ClaimsLost.Inc()
			return true
		}
		return false
	})
	if len(batch) == 0 {
		return
	}
	first := batch[0]
	started := time.Now()
	outcomes := make([]store.ConnectorOutcome, len(batch))
	waitAll := func(wait time.Duration, why string) {
		for i, del := range batch {
			outcomes[i] = store.ConnectorOutcome{DeliveryID: del.ID, EventTime: del.EventTime, ConfigID: del.ConfigID, Status: pendingOrFailed(del.Attempts),
				Attempts: del.Attempts, RetryIn: &wait, Error: why, ClaimToken: del.ClaimToken}
		}
	}
	var runs []store.SyncRun
	adapter, err := d.opener.Open(first.ConfigID, first.StoreID, first.ConnectorType, first.Settings)
	switch {
	case !first.ConfigActive:
		// Not the marketplace's fault: no attempt is spent; the events wait.
		waitAll(time.Minute, "the connector is inactive; its events wait for it")
	case err != nil:
		waitAll(d.cfg.OutageRetry, "the connector's adapter does not open: "+err.Error())
	default:
		events := make([]connectors.Event, len(batch))
		for i, del := range batch {
			events[i] = connectors.Event{ID: del.EventID, Type: del.EventType, StoreID: del.StoreID, Time: del.CreatedAt, Data: del.Payload}
		}
		callCtx, cancel := context.WithTimeout(ctx, d.cfg.Connectors.Timeout)
		called := time.Now()
		errs := handleContained(callCtx, adapter, events)
		cancel()
		// One call hands the adapter the batch: its events' attempts share
		// its start and duration.
		call := store.Attempt{StartedAt: called, Duration: time.Since(called), Replica: d.cfg.Replica}
		defer d.traceConnectorCall(batch, outcomes, called, time.Now())
		if answered := len(errs); answered != len(batch) {
			errs = make([]error, len(batch))
			for i := range errs {
				errs[i] = fmt.Errorf("the %s adapter answered for %d of %d events", first.ConnectorType, answered, len(batch))
			}
		}
		for i, del := range batch {
			outcomes[i] = d.judgeConnector(del, errs[i], call)
			d.metrics.ConnectorOutcomes.WithLabelValues(first.ConnectorType, outcomes[i].Status).Inc()
		}
		runs = syncRuns(batch, outcomes, errs, started)
	}
	for try := 0; ; try++ {
		err := d.store.RecordConnectorOutcomes(ctx, outcomes, runs)
		if err == nil {
			return
		}
		if store.Refused(err) {
			// What the marketplace said is the only outside text here:
			// record the outcomes without it, so the events still end.
			why := "the marketplace's answer could not be stored: " + shortReason(err)
			for i := range outcomes {
				if outcomes[i].Error != "" {
					outcomes[i].Error = why
				}
				if a := outcomes[i].Attempt; a != nil {
					a.Answer = nil
				}
			}
			for i := range runs {
				if runs[i].ErrorSummary != "" {
					runs[i].ErrorSummary = why
				}
			}
		}
		if try >= 5 {
			d.log.Error(err, "recording connector outcomes failed; their claims will lapse and the events be handled again",
				"configId", first.ConfigID, "events", len(batch))
			return
		}
		d.log.Error(err, "recording connector outcomes failed; retrying", "configId", first.ConfigID)
		time.Sleep(time.Duration(try+1) * time.Second)
	}
}

// handleContained calls the adapter so that a panic on one event's data
// costs only that event: the batch is handed over again one event at a
// time, and an event the adapter panics on alone is refused for good.
func handleContained(ctx context.Context, adapter connectors.Adapter, events []connectors.Event) []error {
	errs, panicked := handleRecovering(ctx, adapter, events)
	if panicked == nil {
		return errs
	}
	errs = make([]error, len(events))
	for i := range events {
		one, panicked := handleRecovering(ctx, adapter, events[i:i+1])
		switch {
		case panicked != nil:
			errs[i] = connectors.Permanent(fmt.Errorf("the %s adapter failed on this event: %v", adapter.Type(), panicked))
		case len(one) == 1:
			errs[i] = one[0]
		default:
			errs[i] = fmt.Errorf("the %s adapter answered for %d of 1 events", adapter.Type(), len(one))
		}
	}
	return errs
}

func handleRecovering(ctx context.Context, adapter connectors.Adapter, events []connectors.Event) (errs []error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return adapter.HandleEvents(ctx, events), nil
}

// judgeConnector turns an adapter's verdict on one event, from the call
// made as call says, into its outcome.
func (d *Dispatcher) judgeConnector(del store.ConnectorDelivery, err error, call store.Attempt) store.ConnectorOutcome {
	o := store.ConnectorOutcome{DeliveryID: del.ID, EventTime: del.EventTime, ConfigID: del.ConfigID, Attempts: del.Attempts + 1, Attempted: true,
		ClaimToken: del.ClaimToken, Attempt: connectorAttempt(call, err)}
	schedule := d.cfg.Connectors.RetrySchedule
	switch {
	case err == nil:
		o.Status = store.DeliveryDelivered
	case connectors.IsDeferred(err):
		// Held back on our side (a rate limit's turn, a Vault outage): not
		// sent, so no attempt is spent.
		o.Status, o.Attempts, o.Attempted, o.Error, o.Attempt = pendingOrFailed(del.Attempts), del.Attempts, false, err.Error(), nil
		o.RetryIn = ptr(d.cfg.OutageRetry)
	case connectors.IsPermanent(err):
		o.Status, o.Error = store.DeliveryDeadLettered, err.Error()
	case o.Attempts >= len(schedule):
		o.Status, o.Error = store.DeliveryDeadLettered, fmt.Sprintf("%d attempts failed; last: %v", o.Attempts, err)
	default:
		o.Status, o.Error = store.DeliveryFailed, err.Error()
		o.RetryIn = ptr(schedule[o.Attempts])
	}
	return o
}

// connectorAttempt is the attempt a call made, with the marketplace's
// answer when the adapter's error is (or wraps) a non-2xx answer: the
// answer its error already quotes, cut short by the adapter.
func connectorAttempt(call store.Attempt, err error) *store.ConnectorAttempt {
	a := &store.ConnectorAttempt{Attempt: call}
	if se, ok := errors.AsType[*connectors.StatusError](err); ok {
		a.HTTPStatus, a.Answer = &se.Status, &se.Body
	}
	return a
}

// syncRuns summarises a batch as one sync-log row per entity type, of the
// events actually sent.
func syncRuns(batch []store.ConnectorDelivery, outcomes []store.ConnectorOutcome, errs []error, started time.Time) []store.SyncRun {
	type tally struct {
		ok, failed int
		errs       []string
	}
	tallies := map[string]*tally{}
	var order []string
	for i, del := range batch {
		if !outcomes[i].Attempted {
			continue // held back on our side: not part of this run
		}
		entity, _, _ := strings.Cut(del.EventType, ".")
		t, ok := tallies[entity]
		if !ok {
			t = &tally{}
			tallies[entity] = t
			order = append(order, entity)
		}
		if outcomes[i].Status == store.DeliveryDelivered {
			t.ok++
			continue
		}
		t.failed++
		if len(t.errs) < 3 && errs[i] != nil {
			t.errs = append(t.errs, errs[i].Error())
		}
	}
	finished := time.Now()
	var runs []store.SyncRun
	for _, entity := range order {
		t := tallies[entity]
		run := store.SyncRun{ConfigID: batch[0].ConfigID, Direction: store.SyncOutbound, EntityType: entity, RecordCount: t.ok,
			StartedAt: started, FinishedAt: finished, Status: store.SyncSucceeded}
		switch {
		case t.failed > 0 && t.ok == 0:
			run.Status = store.SyncFailed
		case t.failed > 0:
			run.Status = store.SyncPartial
		}
		if t.failed > 0 {
			run.ErrorSummary = truncateSummary(fmt.Sprintf("%d of %d failed: %s", t.failed, t.ok+t.failed, strings.Join(t.errs, "; ")))
		}
		runs = append(runs, run)
	}
	return runs
}

func truncateSummary(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
