package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Claim is a replica's hold on work it is about to do: rows it claims carry
// Token, and stay its own for Lease from the database's clock unless
// renewed. Writes made under a claim apply only while the row still
// carries its token, so a replica that lost a claim (frozen, cut off from
// Postgres past its lease) cannot overwrite the new holder's outcome.
type Claim struct {
	Token uuid.UUID
	Lease time.Duration
}

// NewClaim is a fresh claim token for lease.
func NewClaim(lease time.Duration) Claim {
	return Claim{Token: NewID(), Lease: lease}
}

// Held is one row a replica holds: its id, its partition key and the
// token it claimed it with.
type Held struct {
	ID        uuid.UUID
	EventTime time.Time
	Token     uuid.UUID
}

// ClaimTable names a table whose rows are claimed with tokens.
type ClaimTable string

// The tables whose rows are claimed, renewed and released with tokens.
const (
	WebhookClaims   ClaimTable = "webhook_deliveries"
	ConnectorClaims ClaimTable = "connector_deliveries"
)

// RenewClaims extends, for lease, the claims still carrying the tokens
// held, in one statement, and returns the ids renewed: a held row missing
// from the answer was ended or taken over by another replica.
func (s *Store) RenewClaims(ctx context.Context, table ClaimTable, held []Held, lease time.Duration) (map[uuid.UUID]bool, error) {
	if len(held) == 0 {
		return map[uuid.UUID]bool{}, nil
	}
	ids, times, tokens := heldColumns(held)
	rows, err := s.pool.Query(ctx, `UPDATE `+string(table)+` d SET claimed_until = now() + $3 * interval '1 millisecond'
		FROM unnest($1::uuid[], $2::uuid[], $4::timestamptz[]) AS h(id, token, at)
		WHERE d.delivery_id = h.id AND d.event_time = h.at AND d.claim_token = h.token AND d.status IN ('PENDING', 'FAILED')
		RETURNING d.delivery_id`, ids, tokens, lease.Milliseconds(), times)
	if err != nil {
		return nil, fmt.Errorf("renew claims on %s: %w", table, err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("renew claims on %s: %w", table, err)
	}
	out := make(map[uuid.UUID]bool, len(renewed))
	for _, id := range renewed {
		out[id] = true
	}
	return out, nil
}

// ReleaseClaims gives up claims on rows that will not be worked on by
// their claimant (it is shutting down), so they are due to others now. A
// claim another replica has taken since is left alone.
func (s *Store) ReleaseClaims(ctx context.Context, table ClaimTable, held []Held) error {
	if len(held) == 0 {
		return nil
	}
	ids, times, tokens := heldColumns(held)
	_, err := s.pool.Exec(ctx, `UPDATE `+string(table)+` d SET claimed_until = NULL, claim_token = NULL
		FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS h(id, token, at)
		WHERE d.delivery_id = h.id AND d.event_time = h.at AND d.claim_token = h.token AND d.status IN ('PENDING', 'FAILED')`, ids, tokens, times)
	if err != nil {
		return fmt.Errorf("release claims on %s: %w", table, err)
	}
	return nil
}

// Held is the claim this delivery was claimed under.
func (d Delivery) Held() Held { return Held{ID: d.ID, EventTime: d.EventTime, Token: d.ClaimToken} }

// Held is the claim this connector delivery was claimed under.
func (d ConnectorDelivery) Held() Held {
	return Held{ID: d.ID, EventTime: d.EventTime, Token: d.ClaimToken}
}

func heldColumns(held []Held) (ids []uuid.UUID, times []time.Time, tokens []uuid.UUID) {
	ids, times, tokens = make([]uuid.UUID, len(held)), make([]time.Time, len(held)), make([]uuid.UUID, len(held))
	for i, h := range held {
		ids[i], times[i], tokens[i] = h.ID, h.EventTime, h.Token
	}
	return ids, times, tokens
}

// fenceSQL is the condition under which an outcome applies to row d given
// the token u.token it was claimed with: the row still carries it. A zero
// token is an unfenced write (tools and tests that hold no claim).
const fenceSQL = `(u.token = '00000000-0000-0000-0000-000000000000'::uuid OR d.claim_token = u.token)`
