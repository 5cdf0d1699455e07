package dispatcher

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// Stage 8, observe: the numbers an operator alerts on that no single
// delivery shows — deliveries due but not yet attempted (queue depth), and
// how far the consumer group is behind the platform's topics (lag) — and
// the topic list itself, when topics are chosen by pattern.

func (d *Dispatcher) observe(ctx context.Context, client *kafka.Client, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastCommitted int64 = -1
	lastProgress := time.Now()
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
		lag, committed, err := d.consumerLag(ctx, client, d.topics())
		if err == nil {
			d.metrics.ConsumerLag.Set(float64(lag))
			if lag == 0 || committed != lastCommitted {
				lastCommitted, lastProgress = committed, time.Now()
			} else if time.Since(lastProgress) > d.cfg.Kafka.StallTimeout {
				d.log.Info("the group has lag but has committed nothing lately; rejoining it", "lag", lag, "stalledFor", time.Since(lastProgress).Round(time.Second))
				d.metrics.Rejoins.Inc()
				select {
				case d.rejoin <- struct{}{}:
				default:
				}
				lastProgress = time.Now()
			}
		} else if ctx.Err() == nil {
			d.log.V(1).Info("consumer lag unavailable", "error", err.Error())
		}
	}
}

// consumerLag sums, over the topics' partitions, the messages not yet
// committed by the group, and the committed offsets themselves (which
// move whenever the group makes progress).
func (d *Dispatcher) consumerLag(ctx context.Context, client *kafka.Client, topics []string) (lag, committedSum int64, err error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, 0, err
	}
	offsets := map[string][]kafka.OffsetRequest{}
	parts := map[string][]int{}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			offsets[t.Name] = append(offsets[t.Name], kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			parts[t.Name] = append(parts[t.Name], p.ID)
		}
	}
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: offsets})
	if err != nil {
		return 0, 0, err
	}
	committed, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: d.cfg.Kafka.GroupID, Topics: parts})
	if err != nil {
		return 0, 0, err
	}
	if committed.Error != nil {
		return 0, 0, committed.Error
	}
	done := map[string]map[int]int64{}
	for topic, ps := range committed.Topics {
		done[topic] = map[int]int64{}
		for _, p := range ps {
			done[topic][p.Partition] = p.CommittedOffset
			committedSum += max(p.CommittedOffset, 0)
		}
	}
	for topic, ps := range ends.Topics {
		for _, p := range ps {
			from := p.FirstOffset
			if c, ok := done[topic][p.Partition]; ok && c >= 0 {
				from = c
			}
			lag += max(p.LastOffset-from, 0)
		}
	}
	return lag, committedSum, nil
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
