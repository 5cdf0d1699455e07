package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Stage 8, observe: the numbers an operator alerts on that no single
// delivery shows — deliveries due but not yet attempted (queue depth), and
// how far the consumer group is behind the platform's topics (lag) — and
// the topic list itself, when topics are chosen by pattern.
//
// It also watches the partitions this replica owns, each on its own: one
// stuck partition hides in the group's sums while the others move. A
// stuck partition is one with lag whose committed offset has not moved for
// StallTimeout; rejoining the group gets it consumed again (a stale
// assignment is the cause seen). Each replica judges only its own
// partitions, and not while its intake is blocked by an outage: rejoining
// cures no outage, and every replica rejoining at once is a rebalance
// storm. A partition with lag that nobody owns is rejoined for by one
// replica only, the member whose id sorts first; so is one that another
// member has held still for twice the timeout, since its owner would have
// rejoined by then were it alive: a killed member the coordinator has not
// evicted keeps its assignment, and only a rebalance takes it away (seen
// after a kill -9). The first member is chosen among those owning no such
// partition, so a dead first member does not silence the rest.

func (d *Dispatcher) observe(ctx context.Context, client *kafka.Client, every time.Duration) {
	// Checked less often than half the timeout, a stall would run well past it.
	if half := d.cfg.Kafka.StallTimeout / 2; half > 0 && half < every {
		every = half
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var watch stallWatch
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.cfg.Ephemeral {
			if n, err := d.store.DueCount(ctx); err == nil {
				d.metrics.QueueDepth.Set(float64(n))
			}
		}
		topics := d.topics()
		if len(topics) == 0 {
			continue // not resolved yet; an empty Metadata request would list every topic
		}
		parts, err := d.partitionOffsets(ctx, client, topics)
		if err != nil {
			if ctx.Err() == nil {
				d.log.V(1).Info("consumer lag unavailable", "error", err.Error())
			}
			continue
		}
		var lag int64
		for _, o := range parts {
			lag += o.lag()
		}
		d.metrics.ConsumerLag.Set(float64(lag))
		group, err := d.membership(ctx, client)
		if err != nil {
			if ctx.Err() == nil {
				d.log.V(1).Info("group assignment unavailable", "error", err.Error())
			}
			continue
		}
		v, ok := watch.judge(time.Now(), parts, group, d.metrics.intakeBlockedSince.Load() != 0 || d.handingOff.Load() != 0, d.cfg.Kafka.StallTimeout)
		if !ok {
			continue // rebalancing: the assignment is about to change
		}
		// The rejoin is counted before the gauges move, so that whoever
		// sees the stall also sees the rejoin it caused.
		if v.rejoin {
			d.log.Info("the group has stalled partitions; rejoining it", "partitions", names(v.stalled), "unowned", names(v.unowned),
				"abandoned", names(v.abandoned), "stallTimeout", d.cfg.Kafka.StallTimeout)
			d.metrics.Rejoins.Inc()
			select {
			case d.rejoin <- struct{}{}:
			default:
			}
		}
		d.metrics.OwnedPartitions.Set(float64(v.owned))
		d.metrics.OwnedLag.Set(float64(v.ownedLag))
		d.metrics.StalledPartitions.Set(float64(len(v.stalled)))
	}
}

type topicPartition struct {
	topic     string
	partition int
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

func names(tps []topicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		out[i] = tp.String()
	}
	return out
}

// offsets is where one partition stands: its log's first and end offsets
// and the group's committed offset (-1: none yet).
type offsets struct {
	first, end, committed int64
}

// lag is the messages not yet committed by the group.
func (o offsets) lag() int64 {
	from := o.first
	if o.committed >= 0 {
		from = o.committed
	}
	return max(o.end-from, 0)
}

// partitionOffsets is where each of the topics' partitions stands.
func (d *Dispatcher) partitionOffsets(ctx context.Context, client *kafka.Client, topics []string) (map[topicPartition]offsets, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("topic metadata: %w", err)
	}
	requests := map[string][]kafka.OffsetRequest{}
	ids := map[string][]int{}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			requests[t.Name] = append(requests[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			ids[t.Name] = append(ids[t.Name], p.ID)
		}
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: requests})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: d.cfg.Kafka.GroupID, Topics: ids})
	if err == nil {
		err = committed.Error
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", d.cfg.Kafka.GroupID, err)
	}
	out := map[topicPartition]offsets{}
	for topic, ps := range ends.Topics {
		for _, p := range ps {
			if p.Error == nil {
				out[topicPartition{topic, p.Partition}] = offsets{first: p.FirstOffset, end: p.LastOffset, committed: -1}
			}
		}
	}
	for topic, ps := range committed.Topics {
		for _, p := range ps {
			if o, ok := out[topicPartition{topic, p.Partition}]; ok && p.Error == nil {
				o.committed = p.CommittedOffset
				out[topicPartition{topic, p.Partition}] = o
			}
		}
	}
	return out, nil
}

// membership is the group's assignment as its coordinator settled it.
type membership struct {
	// stable: the group is not rebalancing, so owners are known.
	stable  bool
	members []string
	// mine is this replica's member ids: normally one, but a member it left
	// may linger until the coordinator drops it.
	mine  map[string]bool
	owner map[topicPartition]string
}

// first tells whether this replica is the member whose id sorts first,
// leaving out the members that own any of except.
func (g membership) first(except []topicPartition) bool {
	left := slices.DeleteFunc(slices.Clone(g.members), func(m string) bool {
		return slices.ContainsFunc(except, func(tp topicPartition) bool { return g.owner[tp] == m })
	})
	return len(left) > 0 && g.mine[slices.Min(left)]
}

// membership finds this replica in the group by its client id.
func (d *Dispatcher) membership(ctx context.Context, client *kafka.Client) (membership, error) {
	resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{d.cfg.Kafka.GroupID}})
	if err == nil && len(resp.Groups) != 1 {
		err = fmt.Errorf("%d groups in the answer", len(resp.Groups))
	}
	if err == nil {
		err = resp.Groups[0].Error
	}
	if err != nil {
		return membership{}, fmt.Errorf("describe group %s: %w", d.cfg.Kafka.GroupID, err)
	}
	group := resp.Groups[0]
	g := membership{stable: group.GroupState == "Stable", mine: map[string]bool{}, owner: map[topicPartition]string{}}
	for _, m := range group.Members {
		g.members = append(g.members, m.MemberID)
		if m.ClientID == d.cfg.Kafka.clientID {
			g.mine[m.MemberID] = true
		}
		for _, t := range m.MemberAssignments.Topics {
			for _, p := range t.Partitions {
				g.owner[topicPartition{t.Topic, p}] = m.MemberID
			}
		}
	}
	return g, nil
}

// stallWatch remembers, per partition, since when its committed offset and
// owner have been what they are.
type stallWatch struct {
	seen map[topicPartition]progress
}

type progress struct {
	committed int64
	owner     string
	since     time.Time
}

// verdict is one look at the partitions.
type verdict struct {
	owned    int
	ownedLag int64
	// stalled are ours, unowned nobody's: with lag, unmoved for the
	// timeout; abandoned another member's, unmoved for twice the timeout.
	stalled, unowned, abandoned []topicPartition
	rejoin                      bool
}

// judge looks at the partitions as they stand at now; ok is false while
// the group rebalances. A partition's clock restarts when its committed
// offset or its owner changes, or it has no lag; all clocks restart after
// a rejoin, so that the next one waits a whole timeout again.
func (w *stallWatch) judge(now time.Time, parts map[topicPartition]offsets, g membership, intakeBlocked bool, timeout time.Duration) (v verdict, ok bool) {
	if !g.stable {
		return verdict{}, false
	}
	next := make(map[topicPartition]progress, len(parts))
	for tp, o := range parts {
		owner, lag := g.owner[tp], o.lag()
		p, seen := w.seen[tp]
		if !seen || lag == 0 || p.committed != o.committed || p.owner != owner {
			p = progress{committed: o.committed, owner: owner, since: now}
		}
		next[tp] = p
		stuck := lag > 0 && now.Sub(p.since) >= timeout
		switch {
		case g.mine[owner]:
			v.owned++
			v.ownedLag += lag
			if stuck {
				v.stalled = append(v.stalled, tp)
			}
		case owner == "" && stuck:
			v.unowned = append(v.unowned, tp)
		case owner != "" && lag > 0 && now.Sub(p.since) >= 2*timeout:
			v.abandoned = append(v.abandoned, tp)
		}
	}
	w.seen = next
	byName := func(a, b topicPartition) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return a.partition - b.partition
	}
	slices.SortFunc(v.stalled, byName)
	slices.SortFunc(v.unowned, byName)
	slices.SortFunc(v.abandoned, byName)
	// A blocked intake holds all our partitions still (and, in a shared
	// outage, everyone's); a rejoin would only hand the same outage to
	// another replica, and rebalance the group.
	v.rejoin = len(v.stalled) > 0 && !intakeBlocked ||
		(len(v.unowned) > 0 || len(v.abandoned) > 0 && !intakeBlocked) && g.first(v.abandoned)
	if v.rejoin {
		w.seen = nil
	}
	return v, true
}

// resolveTopics is the configured topics plus, with a pattern, every
// matching topic the cluster has now.
func (d *Dispatcher) resolveTopics(ctx context.Context, client *kafka.Client) ([]string, error) {
	topics := slices.Clone(d.cfg.Kafka.Topics)
	if d.cfg.Kafka.TopicPattern != nil {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		ours := []string{d.cfg.Kafka.PoisonTopic, d.cfg.Kafka.DeliveredTopic, d.cfg.Kafka.DeadLetteredTopic}
		for _, t := range meta.Topics {
			if !t.Internal && d.cfg.Kafka.TopicPattern.MatchString(t.Name) && !slices.Contains(ours, t.Name) {
				topics = append(topics, t.Name)
			}
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics), nil
}
