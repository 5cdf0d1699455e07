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
// its poller at a time; the run opens a RUNNING sync-log row and pulls page
// after page (while the adapter has more and the run's budget lasts),
// publishing each page to the events topic and only then saving its
// cursor, so a crash re-polls one page rather than loses it (the events'
// ids are stable), and a failure on a late page keeps the earlier ones. A
// run that leaves more behind is followed soon; a failed run retries with
// backoff, never later than the interval.

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
	p, err := d.pollPages(ctx, job, &run)
	next := job.Interval
	switch {
	case err != nil && p.pages > 0:
		// The pages before the failure are kept: retry the rest soon, as
		// for a first failure.
		run.Status, run.ErrorSummary = store.SyncPartial, truncateSummary(err.Error())
		next = min(job.Interval, 30*time.Second)
		d.log.Info("connector poll failed after some pages; will resume", "configId", job.ConfigID, "type", job.ConnectorType,
			"pages", p.pages, "in", next, "reason", err.Error())
	case err != nil:
		run.Status, run.ErrorSummary = store.SyncFailed, truncateSummary(err.Error())
		// 30 s, 1 min, 2 min, ... but never later than the regular interval.
		next = min(job.Interval, 30*time.Second<<min(job.ConsecutiveFailures, 10))
		d.log.Info("connector poll failed; will retry", "configId", job.ConfigID, "type", job.ConnectorType, "in", next, "reason", err.Error())
	case p.more:
		// A backlog: go on as soon as the marketplace's rate allows.
		next = min(job.Interval, p.wait)
	}
	d.metrics.ConnectorPolls.WithLabelValues(job.ConnectorType, run.Status).Inc()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The cursor was saved page by page.
	if err := d.store.FinishPoll(rctx, job, run, "", next); err != nil {
		d.log.Error(err, "recording a poll run failed; the claim will lapse and the poll run again", "configId", job.ConfigID)
	}
}

// pollProgress is how far a poll run got.
type pollProgress struct {
	// pages went through: published, and their cursor saved.
	pages int
	// more is left for the next run, which may start after wait.
	more bool
	wait time.Duration
}

// pollPages calls the adapter's Poll until it has no more or the run's
// budget (Connectors.Timeout, for all pages) is spent, publishing each
// page and saving its cursor before asking for the next.
func (d *Dispatcher) pollPages(ctx context.Context, job store.PollJob, run *store.SyncRun) (pollProgress, error) {
	var p pollProgress
	adapter, err := d.opener.Open(job.ConfigID, job.StoreID, job.ConnectorType, job.Settings)
	if err != nil {
		return p, fmt.Errorf("the connector's adapter does not open: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, d.cfg.Connectors.Timeout)
	defer cancel()
	// stopped ends the run on err, unless the budget ran out after some
	// pages: the page cut short was not saved, and the next run fetches it.
	stopped := func(err error) (pollProgress, error) {
		if pctx.Err() != nil && p.pages > 0 {
			p.more, p.wait = true, 0
			return p, nil
		}
		return p, err
	}
	cursor := job.Cursor
	for {
		res, err := adapter.Poll(pctx, cursor)
		if res.EntityType != "" {
			run.EntityType = res.EntityType
		}
		if errors.Is(err, connectors.ErrNoPoll) {
			return p, nil
		}
		if err != nil {
			return stopped(err)
		}
		if err := d.PublishEvents(pctx, res.Events); err != nil {
			return stopped(err)
		}
		run.RecordCount += len(res.Events)
		moved := res.Cursor != "" && res.Cursor != cursor
		if moved {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := d.store.SavePollCursor(sctx, job, res.Cursor, d.cfg.Connectors.ClaimLease)
			cancel()
			if err != nil {
				// The page is published; the next run publishes it again, under the same ids.
				return p, err
			}
			cursor = res.Cursor
		}
		if moved || len(res.Events) > 0 {
			p.pages++
		}
		p.more, p.wait = res.More, res.Wait
		// An answer that moved nothing would only repeat itself.
		if !res.More || res.Wait > 0 || !(moved || len(res.Events) > 0) || pctx.Err() != nil {
			return p, nil
		}
	}
}
