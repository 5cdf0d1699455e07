package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPollClaimLapsed says a poll run's claim ran out, or was taken over,
// before it saved its cursor: another replica may be polling the
// connector by now.
var ErrPollClaimLapsed = errors.New("the poll claim has lapsed")

// SavePollCursor keeps a poll run's progress (the cursor after a page
// whose events are published) and extends the run's claim by lease, so a
// long backlog is pulled by one replica and a failure on a later page
// resumes here. It refuses once the claim has lapsed or another replica
// holds it (the claim's token is not the job's).
func (s *Store) SavePollCursor(ctx context.Context, job PollJob, cursor string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE connector_poll_state SET poll_cursor = $2,
		claimed_until = now() + $3 * interval '1 millisecond'
		WHERE config_id = $1 AND claimed_until > now() AND claim_token = $4`, job.ConfigID, text(cursor), lease.Milliseconds(), job.ClaimToken)
	if err != nil {
		return fmt.Errorf("save poll cursor of %s: %w", job.ConfigID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("save poll cursor of %s: %w", job.ConfigID, ErrPollClaimLapsed)
	}
	return nil
}
