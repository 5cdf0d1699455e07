package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FeedApplicationName names the change feed's connection in pg_stat_activity.
const FeedApplicationName = "ss3-credentials-change-feed"

// feedState is the change feed's state. Each change of up makes a new
// epoch, so an entry records which stretch of the feed it was read in.
type feedState struct {
	up    bool
	epoch uint64
	since time.Time
}

// setFeed moves the feed to up or down. The generation moves on both sides
// of the switch, so a lookup running across it never caches its row.
func (v *Validator) setFeed(up bool) {
	old := v.feed.Load()
	if old.up == up {
		return
	}
	v.gen.Add(1)
	v.feed.Store(&feedState{up: up, epoch: old.epoch + 1, since: v.now()})
	v.gen.Add(1)
	if up {
		v.metrics.FeedUp.Set(1)
	} else {
		v.metrics.FeedUp.Set(0)
	}
}

// Health says whether this replica should receive traffic, and why. While
// the feed is up it is ready. While it is down, it stays ready as long as it
// can still answer correctly: within the staleness window from memory, and
// after it while the database answers lookups. So a Postgres outage does
// not drop every replica at once, and a replica cut off on its own goes
// unready once its cache has gone stale.
func (v *Validator) Health(ctx context.Context) (ready bool, state string) {
	st := v.feed.Load()
	now := v.now()
	switch {
	case st.up:
		return true, "listening for credential changes"
	case st.epoch == 0:
		return false, "not yet listening for credential changes"
	case v.cfg.StaleWindow > 0 && now.Before(st.since.Add(v.cfg.StaleWindow)):
		return true, fmt.Sprintf("degraded: change feed down for %s; serving credentials validated before it from memory until %s",
			now.Sub(st.since).Round(time.Second), st.since.Add(v.cfg.StaleWindow).UTC().Format(time.RFC3339))
	}
	pingCtx, cancel := context.WithTimeout(ctx, v.cfg.FeedPingTimeout)
	defer cancel()
	if err := v.store.Pool().Ping(pingCtx); err != nil {
		return false, fmt.Sprintf("change feed down for %s and the database does not answer", now.Sub(st.since).Round(time.Second))
	}
	return true, fmt.Sprintf("degraded: change feed down for %s; validating from the database", now.Sub(st.since).Round(time.Second))
}

// Ready is Health as an error, for probes and tests.
func (v *Validator) Ready() error {
	if ready, state := v.Health(context.Background()); !ready {
		return errors.New(state)
	}
	return nil
}

// Listen follows Postgres notifications of credential changes and drops the
// changed entries, until ctx ends. When the connection breaks (or stops
// answering its liveness ping) the feed is down: cached entries serve for
// the staleness window, everything else is read from Postgres, and on
// reconnect every entry from before is revalidated against its row.
func (v *Validator) Listen(ctx context.Context) {
	const first, longest = 100 * time.Millisecond, 5 * time.Second
	backoff := first
	for ctx.Err() == nil {
		connected, err := v.listenOnce(ctx)
		v.setFeed(false)
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = first
		}
		v.log.Error(err, "credential change feed lost; serving from memory within the staleness window, else from the database")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, longest)
	}
}

// listenOnce runs one LISTEN connection, its own rather than the pool's, so
// the pool is never short of one and a dead feed is closed for good.
// connected says whether LISTEN was established.
func (v *Validator) listenOnce(ctx context.Context) (connected bool, err error) {
	cfg := v.store.Pool().Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = FeedApplicationName
	connectCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN api_credentials_changed"); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	v.setFeed(true)
	for {
		waitCtx, cancel := context.WithTimeout(ctx, v.cfg.FeedPingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err == nil {
			v.gen.Add(1)
			// Marked, not removed: the re-read keeps the secrets already
			// verified if the change left the hashed secrets as they were.
			if e, ok := v.cache.Peek(n.Payload); ok {
				e.changed.Store(true)
			}
			continue
		}
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err) {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		// Quiet for an interval: make sure the server is still there, since a
		// half-open connection would otherwise wait forever, revocations unseen.
		pingCtx, cancel := context.WithTimeout(ctx, v.cfg.FeedPingTimeout)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return true, fmt.Errorf("liveness ping: %w", err)
		}
	}
}
