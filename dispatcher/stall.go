package dispatcher

import (
	"context"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
)

// A batch that keeps failing holds up its partitions. Lag alone does not
// say so (a busy group lags too), nor do logs reach a store admin: the
// stall shows in dispatcher_intake_blocked_seconds (how long this replica's
// batch has been failing) and in intake_stalls, from which the manager
// marks the resources of the batch's stores not Healthy.

type intakeStall struct {
	d          *Dispatcher
	since      time.Time
	topics     []string // with partitions: one entry per partition the batch holds
	partitions []int
	stores     []string
	reported   bool
}

func (d *Dispatcher) newIntakeStall(batch []kafka.Message) *intakeStall {
	s := &intakeStall{d: d, since: time.Now()}
	type tp struct {
		topic     string
		partition int
	}
	seen := map[tp]bool{}
	for _, m := range batch {
		if k := (tp{m.Topic, m.Partition}); !seen[k] {
			seen[k] = true
			s.topics, s.partitions = append(s.topics, m.Topic), append(s.partitions, m.Partition)
		}
		if e, err := Decode(m); err == nil && !slices.Contains(s.stores, e.StoreID) {
			s.stores = append(s.stores, e.StoreID)
		}
	}
	d.metrics.intakeBlockedSince.Store(s.since.UnixNano())
	return s
}

// report records the stall (best effort: the outage may be Postgres's own).
func (s *intakeStall) report(ctx context.Context, cause error) {
	if s.d.cfg.Ephemeral {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for i, topic := range s.topics {
		err := s.d.store.ReportIntakeStall(rctx, store.IntakeStall{Topic: topic, Partition: s.partitions[i], StoreIDs: s.stores,
			Reason: shortReason(cause), Since: s.since})
		if err != nil {
			return
		}
		s.reported = true
	}
}

// clear records that the batch went through.
func (s *intakeStall) clear(ctx context.Context) {
	s.d.metrics.intakeBlockedSince.Store(0)
	if !s.reported {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.d.store.ClearIntakeStalls(cctx, s.topics, s.partitions); err != nil {
		// The rows age out of IntakeStalls' freshness window on their own.
		s.d.log.Error(err, "clearing a recorded intake stall failed")
	}
}
