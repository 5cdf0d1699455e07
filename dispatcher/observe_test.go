package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
)

var (
	p0 = topicPartition{eventsTopic, 0}
	p1 = topicPartition{eventsTopic, 1}
	p2 = topicPartition{eventsTopic, 2}
)

// look is one judge call: the partitions as they stand, and what it must decide.
type look struct {
	at        time.Duration // since the first look
	parts     map[topicPartition]offsets
	blocked   bool
	rejoin    bool
	stalled   []topicPartition
	unowned   []topicPartition
	abandoned []topicPartition
}

func judgeLooks(t *testing.T, g membership, looks []look) {
	t.Helper()
	const timeout = time.Minute
	var w stallWatch
	t0 := time.Now()
	for i, l := range looks {
		v, ok := w.judge(t0.Add(l.at), l.parts, g, l.blocked, timeout)
		if !ok {
			t.Fatalf("look %d: no verdict for a stable group", i)
		}
		if v.rejoin != l.rejoin || !slices.Equal(v.stalled, l.stalled) || !slices.Equal(v.unowned, l.unowned) || !slices.Equal(v.abandoned, l.abandoned) {
			t.Errorf("look %d at %v: rejoin %v, stalled %v, unowned %v, abandoned %v; want %v, %v, %v, %v",
				i, l.at, v.rejoin, v.stalled, v.unowned, v.abandoned, l.rejoin, l.stalled, l.unowned, l.abandoned)
		}
	}
}

// at is a partition with lag end-committed.
func at(committed, end int64) offsets { return offsets{first: 0, end: end, committed: committed} }

func TestJudgeRejoinsForOneStuckPartitionAmongMovingOnes(t *testing.T) {
	g := membership{stable: true, members: []string{"a-1"}, mine: map[string]bool{"a-1": true},
		owner: map[topicPartition]string{p0: "a-1", p1: "a-1", p2: "a-1"}}
	judgeLooks(t, g, []look{
		{at: 0, parts: map[topicPartition]offsets{p0: at(10, 20), p1: at(5, 15), p2: at(0, 0)}},
		{at: 30 * time.Second, parts: map[topicPartition]offsets{p0: at(20, 30), p1: at(5, 25), p2: at(0, 0)}},
		// p0 moved twice, p2 has nothing to consume; p1 sat at 5 for the timeout.
		{at: time.Minute, parts: map[topicPartition]offsets{p0: at(30, 40), p1: at(5, 35), p2: at(0, 0)},
			rejoin: true, stalled: []topicPartition{p1}},
		// The rejoin restarts every clock, from the next look: no second
		// rejoin before another whole timeout.
		{at: 90 * time.Second, parts: map[topicPartition]offsets{p0: at(40, 50), p1: at(5, 45), p2: at(0, 0)}},
		{at: 149 * time.Second, parts: map[topicPartition]offsets{p0: at(45, 50), p1: at(5, 45), p2: at(0, 0)}},
		{at: 150 * time.Second, parts: map[topicPartition]offsets{p0: at(50, 60), p1: at(5, 55), p2: at(0, 0)},
			rejoin: true, stalled: []topicPartition{p1}},
	})
}

func TestJudgeDoesNotRejoinWhileIntakeIsBlocked(t *testing.T) {
	g := membership{stable: true, members: []string{"a-1", "b-1"}, mine: map[string]bool{"a-1": true},
		owner: map[topicPartition]string{p0: "a-1", p1: "a-1", p2: "b-1"}}
	stuck := map[topicPartition]offsets{p0: at(10, 20), p1: at(-1, 15), p2: at(3, 9)}
	judgeLooks(t, g, []look{
		{at: 0, parts: stuck, blocked: true},
		// Stalled, and shown so, but an outage is no cause to rejoin; p2 is
		// b's, held as still by the same outage.
		{at: 2 * time.Minute, parts: stuck, blocked: true, stalled: []topicPartition{p0, p1}, abandoned: []topicPartition{p2}},
		{at: 5 * time.Minute, parts: stuck, blocked: true, stalled: []topicPartition{p0, p1}, abandoned: []topicPartition{p2}},
		// Unblocked but still not moving: now it is a stall a rejoin may cure.
		{at: 5*time.Minute + time.Second, parts: stuck, rejoin: true, stalled: []topicPartition{p0, p1}, abandoned: []topicPartition{p2}},
	})
}

func TestJudgeLeavesAnotherMembersPartitionsToItForTwiceTheTimeout(t *testing.T) {
	g := membership{stable: true, members: []string{"a-1", "b-1"}, mine: map[string]bool{"a-1": true},
		owner: map[topicPartition]string{p0: "a-1", p1: "b-1"}}
	parts := map[topicPartition]offsets{p0: at(1, 1), p1: at(0, 50)}
	judgeLooks(t, g, []look{
		{at: 0, parts: parts},
		// b had its timeout to rejoin, and its own second.
		{at: time.Minute, parts: parts},
		{at: 119 * time.Second, parts: parts},
		// Still unmoved: b is gone without the coordinator knowing.
		{at: 2 * time.Minute, parts: parts, rejoin: true, abandoned: []topicPartition{p1}},
	})
}

// A killed member that sorts first, and that the coordinator still counts,
// does not stop the others from rejoining for its partitions: only one of
// them does, the first of those that own none.
func TestJudgeRejoinsForADeadFirstMembersPartitionsOnce(t *testing.T) {
	owner := map[topicPartition]string{p0: "a-dead", p1: "b-1", p2: "c-1"}
	parts := map[topicPartition]offsets{p0: at(3, 40), p1: at(9, 9), p2: at(9, 9)}
	members := []string{"c-1", "a-dead", "b-1"}
	judgeLooks(t, membership{stable: true, members: members, mine: map[string]bool{"b-1": true}, owner: owner}, []look{
		{at: 0, parts: parts},
		{at: 2 * time.Minute, parts: parts, rejoin: true, abandoned: []topicPartition{p0}},
	})
	judgeLooks(t, membership{stable: true, members: members, mine: map[string]bool{"c-1": true}, owner: owner}, []look{
		{at: 0, parts: parts},
		{at: 2 * time.Minute, parts: parts, abandoned: []topicPartition{p0}},
	})
}

func TestJudgeLetsOnlyTheFirstMemberRejoinForAnUnownedPartition(t *testing.T) {
	owner := map[topicPartition]string{p0: "a-1", p1: "b-1"} // p2: nobody
	parts := map[topicPartition]offsets{p0: at(7, 7), p1: at(7, 7), p2: at(0, 12)}
	first := membership{stable: true, members: []string{"b-1", "a-1"}, mine: map[string]bool{"a-1": true}, owner: owner}
	other := membership{stable: true, members: []string{"b-1", "a-1"}, mine: map[string]bool{"b-1": true}, owner: owner}
	judgeLooks(t, first, []look{
		{at: 0, parts: parts},
		{at: 59 * time.Second, parts: parts},
		// Acted on even with the intake blocked: the rebalance hands the
		// partition to someone, so it is not repeated.
		{at: time.Minute, parts: parts, blocked: true, rejoin: true, unowned: []topicPartition{p2}},
	})
	judgeLooks(t, other, []look{
		{at: 0, parts: parts},
		{at: 5 * time.Minute, parts: parts, unowned: []topicPartition{p2}},
	})
}

func TestJudgeRestartsTheClockWhenTheOwnerChanges(t *testing.T) {
	before := membership{stable: true, members: []string{"a-1", "b-1"}, mine: map[string]bool{"a-1": true},
		owner: map[topicPartition]string{p0: "b-1"}}
	after := membership{stable: true, members: []string{"a-1", "b-1"}, mine: map[string]bool{"a-1": true},
		owner: map[topicPartition]string{p0: "a-1"}}
	parts := map[topicPartition]offsets{p0: at(4, 9)}
	var w stallWatch
	t0 := time.Now()
	if v, _ := w.judge(t0, parts, before, false, time.Minute); v.rejoin || v.owned != 0 {
		t.Fatalf("b's partition: %+v", v)
	}
	// Just handed to us after sitting still with b: ours to judge from now.
	if v, _ := w.judge(t0.Add(5*time.Minute), parts, after, false, time.Minute); v.rejoin || v.owned != 1 || v.ownedLag != 5 {
		t.Fatalf("just assigned: %+v", v)
	}
	if v, _ := w.judge(t0.Add(6*time.Minute), parts, after, false, time.Minute); !v.rejoin || !slices.Equal(v.stalled, []topicPartition{p0}) {
		t.Fatalf("ours for the timeout: %+v", v)
	}
	if _, ok := w.judge(t0.Add(7*time.Minute), parts, membership{}, false, time.Minute); ok {
		t.Fatal("a verdict while the group rebalances")
	}
}

// TestReplicasFindTheirOwnPartitions runs two replicas in one group: each
// must find its own member among the group's by its client id, and so own
// one of the two partitions (with a shared client id, each would count both).
func TestReplicasFindTheirOwnPartitions(t *testing.T) {
	e := startEnv(t)
	cfg := Config{Kafka: KafkaConfig{SessionTimeout: 6 * time.Second, StallTimeout: 2 * time.Second}}
	a, b := e.run(t, cfg), e.run(t, cfg)
	if a.cfg.Kafka.clientID == b.cfg.Kafka.clientID {
		t.Fatalf("both replicas are %q", a.cfg.Kafka.clientID)
	}
	eventually(t, 30*time.Second, "each replica owning one partition", func() error {
		if na, nb := testutil.ToFloat64(a.metrics.OwnedPartitions), testutil.ToFloat64(b.metrics.OwnedPartitions); na != 1 || nb != 1 {
			return fmt.Errorf("owned partitions: %v and %v", na, nb)
		}
		return nil
	})
	client := &kafka.Client{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Timeout: 10 * time.Second}
	g, err := a.membership(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.members) != 2 || len(g.mine) != 1 || !g.mine[g.owner[p0]] && !g.mine[g.owner[p1]] || g.owner[p0] == g.owner[p1] {
		t.Fatalf("group as a sees it: %+v", g)
	}
}

func TestIntakeBlockedByAnOutageDoesNotRejoin(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	e.subscribe(t, "store-x", recv.URL, []string{"order.*"}, nil)
	allow := e.refuseStoreXWrites(t)
	d := e.run(t, Config{Kafka: KafkaConfig{StallTimeout: time.Second}})
	e.produce(t, goodEvents(t, "store-x", 3)...)

	// The gauge shows the stall only once it has lasted the timeout, in
	// the same look that would have rejoined.
	eventually(t, 30*time.Second, "the blocked partition shown as stalled", func() error {
		if s, b := testutil.ToFloat64(d.metrics.StalledPartitions), testutil.ToFloat64(d.metrics.IntakeBlocked); s != 1 || b <= 0 {
			return fmt.Errorf("stalled partitions %v, intake blocked %vs", s, b)
		}
		return nil
	})
	if n := testutil.ToFloat64(d.metrics.Rejoins); n != 0 {
		t.Fatalf("rejoined %v times during the outage", n)
	}
	allow()
	waitRequests(t, recv, 3, "the events delivered once Postgres takes them")
	eventually(t, 20*time.Second, "the stall gone", func() error {
		if s, l := testutil.ToFloat64(d.metrics.StalledPartitions), testutil.ToFloat64(d.metrics.OwnedLag); s != 0 || l != 0 {
			return fmt.Errorf("stalled partitions %v, owned lag %v", s, l)
		}
		return nil
	})
	if n := testutil.ToFloat64(d.metrics.Rejoins); n != 0 {
		t.Fatalf("rejoined %v times", n)
	}
}

// leaveOutOne assigns partition 0 to the dispatcher and partition 1 to
// nobody, as a stale assignment would leave it.
type leaveOutOne struct{}

func (leaveOutOne) ProtocolName() string      { return "range" }
func (leaveOutOne) UserData() ([]byte, error) { return nil, nil }
func (leaveOutOne) AssignGroups(members []kafka.GroupMember, _ []kafka.Partition) kafka.GroupMemberAssignments {
	out := kafka.GroupMemberAssignments{}
	for _, m := range members {
		if strings.HasPrefix(m.ID, "integration-dispatcher-") {
			out[m.ID] = map[string][]int{eventsTopic: {0}}
		}
	}
	return out
}

func TestAPartitionNobodyOwnsIsRejoinedFor(t *testing.T) {
	e := startEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A member that leads the group (it joins first, and the coordinator
	// keeps its leader) and assigns with leaveOutOne; its id sorts after
	// the dispatcher's, so the dispatcher is the one to act.
	leader, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: "integration-dispatcher", Brokers: e.bed.Kafka.Brokers(),
		Topics: []string{eventsTopic}, GroupBalancers: []kafka.GroupBalancer{leaveOutOne{}}, Dialer: &kafka.Dialer{ClientID: "zz-test-leader"},
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	first := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			if _, err := leader.Next(ctx); err != nil {
				return
			}
			if i == 0 {
				close(first)
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		t.Fatal("the leading member did not join")
	}
	d := e.run(t, Config{Kafka: KafkaConfig{SessionTimeout: 6 * time.Second, StallTimeout: time.Second}})
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 1 })}
	defer w.Close()
	if err := w.WriteMessages(ctx, goodEvents(t, "store-a", 3)...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a rejoin for the partition nobody owns", func() error {
		if n := testutil.ToFloat64(d.metrics.Rejoins); n < 1 {
			return fmt.Errorf("%v rejoins", n)
		}
		return nil
	})
	// Only partition 0 was ever the dispatcher's: the rejoin was not for a
	// stall of its own.
	if owned, stalled := testutil.ToFloat64(d.metrics.OwnedPartitions), testutil.ToFloat64(d.metrics.StalledPartitions); owned != 1 || stalled != 0 {
		t.Fatalf("owned %v, stalled %v", owned, stalled)
	}
}
