package testbed

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process broker speaking the Kafka wire protocol (kfake),
// for our real client, segmentio/kafka-go.
type Kafka struct {
	cluster *kfake.Cluster
}

// StartKafka starts a one-broker cluster on a free loopback port with topics
// created, each with partitions partitions.
func StartKafka(partitions int32, topics ...string) (*Kafka, error) {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	return &Kafka{cluster: c}, nil
}

// Brokers are the bootstrap addresses.
func (k *Kafka) Brokers() []string { return k.cluster.ListenAddrs() }

// Cluster exposes kfake's controls (for example, injected failures).
func (k *Kafka) Cluster() *kfake.Cluster { return k.cluster }

// Close stops the broker.
func (k *Kafka) Close() { k.cluster.Close() }
