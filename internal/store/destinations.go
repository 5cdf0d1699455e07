package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
)

// Destination is where a subscription delivers when it is not an HTTP
// endpoint: its kind and non-sensitive settings (credentials live in
// Vault). It is stored as JSON in webhook_subscriptions.destination.
type Destination struct {
	Kind  string            `json:"kind"` // "sqs" or "stomp"
	SQS   *SQSDestination   `json:"sqs,omitempty"`
	STOMP *STOMPDestination `json:"stomp,omitempty"`
}

// SQSDestination is an SQS queue.
type SQSDestination struct {
	Region   string `json:"region"`
	QueueURL string `json:"queueURL"`
	// MessageGroupID is the FIFO group template ({storeId}, {eventType}).
	MessageGroupID string `json:"messageGroupID,omitempty"`
}

// STOMPDestination is a destination on a STOMP broker.
type STOMPDestination struct {
	Address     string            `json:"address"`
	TLS         bool              `json:"tls,omitempty"`
	Login       bool              `json:"login,omitempty"` // a login is in Vault
	Destination string            `json:"destination"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// Destination kinds.
const (
	DestinationSQS   = "sqs"
	DestinationSTOMP = "stomp"
)

// destinationJSON is the column's value for d (nil: an HTTP endpoint).
func destinationJSON(d *Destination) ([]byte, error) {
	if d == nil {
		return nil, nil
	}
	return json.Marshal(d)
}

func parseDestination(raw []byte) (*Destination, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var d Destination
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("read destination: %w", err)
	}
	return &d, nil
}

// SubscriptionDestinations reads the destinations of the given
// subscriptions; those that deliver over HTTP are absent.
func (s *Store) SubscriptionDestinations(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*Destination, error) {
	rows, err := s.pool.Query(ctx, `SELECT subscription_id, destination::text FROM webhook_subscriptions
		WHERE subscription_id = ANY($1) AND destination IS NOT NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("read destinations: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]*Destination{}
	for rows.Next() {
		var id uuid.UUID
		var raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("read destinations: %w", err)
		}
		d, err := parseDestination([]byte(raw))
		if err != nil {
			return nil, err
		}
		out[id] = d
	}
	return out, rows.Err()
}
