package deliveryapi

import (
	"context"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ss3dev/integration-operator/internal/store"
)

// watchSettings tune the poll behind a watch.
type watchSettings struct {
	// every is how often the attempts are polled: a new outcome reaches
	// the watcher within about this.
	every time.Duration
	// overlap re-reads this much before the last poll, for attempts whose
	// transaction began before it and committed after.
	overlap time.Duration
	// owners is how often the visible owners are looked up again, so a new
	// subscription's deliveries join a running watch.
	owners time.Duration
}

var defaultWatch = watchSettings{every: 250 * time.Millisecond, overlap: 3 * time.Second, owners: 5 * time.Second}

// poll is a watch: a goroutine polling the store, sending on a channel
// until stopped or its request ends.
type poll struct {
	events chan watch.Event
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *poll) ResultChan() <-chan watch.Event { return p.events }

func (p *poll) Stop() {
	p.cancel()
	<-p.done
}

func startPoll(ctx context.Context, r *deliveries, q query, namespace string, from time.Time) *poll {
	ctx, cancel := context.WithCancel(ctx)
	p := &poll{events: make(chan watch.Event, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer close(p.events)
		p.run(ctx, r, q, namespace, from)
	}()
	return p
}

// run sends each change once: sent remembers, for the overlap, the
// version of each delivery already sent.
func (p *poll) run(ctx context.Context, r *deliveries, q query, namespace string, cursor time.Time) {
	settings := r.watch
	sent := map[uuid.UUID]time.Time{}
	var owners map[uuid.UUID]owner
	var ids []uuid.UUID
	var ownersAt time.Time
	tick := time.NewTicker(settings.every)
	defer tick.Stop()
	for {
		if time.Since(ownersAt) >= settings.owners {
			list, err := r.dir.visible(ctx, r.kind.owners, namespace, q.owner)
			if err != nil {
				p.fail(ctx, err)
				return
			}
			owners, ids, ownersAt = ownersByID(list), nil, time.Now()
			for id := range owners {
				ids = append(ids, id)
			}
		}
		now, err := r.log.Now(ctx)
		if err == nil && len(ids) > 0 {
			var rows []store.LoggedDelivery
			rows, err = r.kind.changedSince(ctx, ids, cursor.Add(-settings.overlap), 1000)
			for _, d := range rows {
				o, ok := owners[d.OwnerID]
				if !ok || !d.UpdatedAt.After(sent[d.ID]) || !q.matches(d, o.name) {
					continue
				}
				sent[d.ID] = d.UpdatedAt
				kind := watch.Modified
				if d.CreatedAt.After(cursor) {
					kind = watch.Added
				}
				select {
				case p.events <- watch.Event{Type: kind, Object: r.kind.summary(d, o)}:
				case <-ctx.Done():
					return
				}
			}
		}
		if err == nil {
			cursor = now
			for id, at := range sent {
				if at.Before(now.Add(-2 * settings.overlap)) {
					delete(sent, id)
				}
			}
		}
		// A failed poll (Postgres away) is tried again at the next tick:
		// the cursor has not moved, so nothing is missed.
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

func (p *poll) fail(ctx context.Context, err error) {
	select {
	case p.events <- watch.Event{Type: watch.Error, Object: statusOf(err)}:
	case <-ctx.Done():
	}
}
