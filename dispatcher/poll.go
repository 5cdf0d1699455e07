package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/registry"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 9, poll: each active connector whose adapter polls is pulled on its
// interval. A claim with a lease in connector_poll_state makes one replica
// its poller at a time; the run opens a RUNNING sync-log row, publishes
// what it found to the events topic, and only then moves the cursor, so a
// crash re-polls rather than loses (the events' ids are stable). A failed
// run retries with backoff, never later than the interval.

// poll claims and runs due polls every PollCheck until ctx ends.
func (d *Dispatcher) poll(ctx context.Context) {
	types := registry.PollingTypes()
	if len(types) == 0 {
		return
	}
	slots := make(chan struct{}, d.cfg.Connectors.Workers)
	var running sync.WaitGroup
	defer running.Wait()
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		free := cap(slots) - len(slots)
		if free == 0 {
			return
		}
		jobs, err := d.store.ClaimDuePolls(ctx, types, free, d.cfg.Connectors.ClaimLease)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error(err, "claiming due polls failed; will retry")
			}
			return
		}
		for _, job := range jobs {
			slots <- struct{}{}
			running.Go(func() {
				defer func() { <-slots }()
				d.runPoll(context.WithoutCancel(ctx), job)
			})
		}
	}, d.cfg.Connectors.PollCheck)
}

// runPoll polls one connector and records the run.
func (d *Dispatcher) runPoll(ctx context.Context, job store.PollJob) {
	run := store.SyncRun{ConfigID: job.ConfigID, Direction: store.SyncInbound, EntityType: "poll", Status: store.SyncSucceeded}
	cursor, err := d.pollOnce(ctx, job, &run)
	next := job.Interval
	if err != nil {
		run.Status, run.ErrorSummary = store.SyncFailed, truncateSummary(err.Error())
		// 30 s, 1 min, 2 min, ... but never later than the regular interval.
		next = min(job.Interval, 30*time.Second<<min(job.ConsecutiveFailures, 10))
		d.log.Info("connector poll failed; will retry", "configId", job.ConfigID, "type", job.ConnectorType, "in", next, "reason", err.Error())
	}
	d.metrics.ConnectorPolls.WithLabelValues(job.ConnectorType, run.Status).Inc()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.store.FinishPoll(rctx, job, run, cursor, next); err != nil {
		d.log.Error(err, "recording a poll run failed; the claim will lapse and the poll run again", "configId", job.ConfigID)
	}
}

func (d *Dispatcher) pollOnce(ctx context.Context, job store.PollJob, run *store.SyncRun) (string, error) {
	adapter, err := d.opener.Open(job.ConfigID, job.StoreID, job.ConnectorType, job.Settings)
	if err != nil {
		return "", fmt.Errorf("the connector's adapter does not open: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.Connectors.Timeout)
	defer cancel()
	res, err := adapter.Poll(pctx, job.Cursor)
	if res.EntityType != "" {
		run.EntityType = res.EntityType
	}
	if errors.Is(err, connectors.ErrNoPoll) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if err := d.PublishEvents(pctx, res.Events); err != nil {
		return "", err
	}
	run.RecordCount = len(res.Events)
	return res.Cursor, nil
}
