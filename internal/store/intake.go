package store

import (
	"context"
	"fmt"
	"time"
)

// PoisonMessage is a Kafka message set aside because it cannot be
// delivered, kept here when the poison topic would not take it.
type PoisonMessage struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []PoisonHeader
	Reason    string
}

// PoisonHeader is one Kafka header of a poison message.
type PoisonHeader struct {
	Key   string
	Value []byte
}

// RecordPoison keeps messages as they came (bytes, so nothing is refused),
// once per topic, partition and offset.
func (s *Store) RecordPoison(ctx context.Context, msgs []PoisonMessage) error {
	for _, m := range msgs {
		keys := make([]string, len(m.Headers))
		values := make([][]byte, len(m.Headers))
		for i, h := range m.Headers {
			keys[i], values[i] = text(h.Key), h.Value
		}
		if _, err := s.pool.Exec(ctx, `INSERT INTO poison_messages (topic, kafka_partition, kafka_offset, message_key, message_value,
				header_keys, header_values, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING`,
			text(m.Topic), m.Partition, m.Offset, m.Key, m.Value, keys, values, text(m.Reason)); err != nil {
			return fmt.Errorf("record poison message %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
	return nil
}

// IntakeStall is a Kafka partition whose batch cannot be persisted.
type IntakeStall struct {
	Topic     string
	Partition int
	// StoreIDs are the stores with events in the stuck batch.
	StoreIDs []string
	Reason   string
	Since    time.Time
}

// ReportIntakeStall records (or refreshes) a partition that cannot make
// progress, for the manager to show on the resources of its stores.
func (s *Store) ReportIntakeStall(ctx context.Context, st IntakeStall) error {
	stores := make([]string, len(st.StoreIDs))
	for i, id := range st.StoreIDs {
		stores[i] = text(id)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO intake_stalls (topic, kafka_partition, store_ids, reason, since, seen_at)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (topic, kafka_partition) DO UPDATE SET store_ids = EXCLUDED.store_ids, reason = EXCLUDED.reason,
			since = LEAST(intake_stalls.since, EXCLUDED.since), seen_at = now()`,
		text(st.Topic), st.Partition, stores, text(st.Reason), st.Since)
	if err != nil {
		return fmt.Errorf("report intake stall: %w", err)
	}
	return nil
}

// ClearIntakeStalls records that the partitions make progress again.
func (s *Store) ClearIntakeStalls(ctx context.Context, topics []string, partitions []int) error {
	parts := make([]int32, len(partitions))
	for i, p := range partitions {
		parts[i] = int32(p)
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM intake_stalls s USING unnest($1::text[], $2::int[]) AS c(topic, part)
		WHERE s.topic = c.topic AND s.kafka_partition = c.part`, topics, parts)
	if err != nil {
		return fmt.Errorf("clear intake stalls: %w", err)
	}
	return nil
}

// IntakeStalls lists the stalls reported within freshness (a replica that
// died while stalled stops refreshing its rows, and they age out).
func (s *Store) IntakeStalls(ctx context.Context, freshness time.Duration) ([]IntakeStall, error) {
	rows, err := s.pool.Query(ctx, `SELECT topic, kafka_partition, store_ids, reason, since FROM intake_stalls
		WHERE seen_at > now() - $1 * interval '1 millisecond' ORDER BY since`, freshness.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("read intake stalls: %w", err)
	}
	defer rows.Close()
	var out []IntakeStall
	for rows.Next() {
		var st IntakeStall
		var part int32
		if err := rows.Scan(&st.Topic, &part, &st.StoreIDs, &st.Reason, &st.Since); err != nil {
			return nil, fmt.Errorf("read intake stalls: %w", err)
		}
		st.Partition = int(part)
		out = append(out, st)
	}
	return out, rows.Err()
}
