package credentials

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

func status(t *testing.T, r *replica, key string) int {
	t.Helper()
	resp := get(t, r.server.URL+"/credentials/validate", bearer(key))
	resp.Body.Close()
	return resp.StatusCode
}

func readyz(t *testing.T, r *replica) (int, string) {
	t.Helper()
	resp := get(t, r.server.URL+"/readyz", http.Header{})
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFeed waits until the replica's change feed is up (1) or down (0).
func waitFeed(t *testing.T, r *replica, up float64, within time.Duration) {
	t.Helper()
	testbed.Eventually(t, within, time.Millisecond, fmt.Sprintf("change feed up=%v", up), func() error {
		if got := testutil.ToFloat64(r.metrics.FeedUp); got != up {
			return fmt.Errorf("feed up=%v", got)
		}
		return nil
	})
}

func TestRevocationDuringReconnectIsHonouredWithinASecond(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	row, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	if status(t, r, key.Presented) != http.StatusOK {
		t.Fatal("warm-up")
	}
	ctx := context.Background()
	// Cut the feed's connection from the server side, and revoke while it is
	// gone: that notification reaches no one.
	tag, err := st.Pool().Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND datname = current_database()`, FeedApplicationName)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("terminating the feed's connection: %v %v", tag, err)
	}
	waitFeed(t, r, 0, time.Second)
	if _, err := st.RevokeCredential(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	testbed.Eventually(t, 5*time.Second, 5*time.Millisecond, "revoked key refused", func() error {
		if s := status(t, r, key.Presented); s != http.StatusUnauthorized {
			return fmt.Errorf("status %d", s)
		}
		return nil
	})
	if took := time.Since(revoked); took > time.Second {
		t.Fatalf("the revocation took %v to be honoured", took)
	}
	waitFeed(t, r, 1, 5*time.Second)
}

// freezer is a TCP proxy to Postgres whose open connections can be frozen:
// still open, nothing forwarded, as a half-open connection behaves.
type freezer struct {
	listener net.Listener
	target   string
	mu       sync.Mutex
	frozen   []chan struct{}
	open     []net.Conn
}

func startFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{listener: l, target: target}
	go f.serve()
	t.Cleanup(func() {
		l.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.open {
			c.Close()
		}
	})
	return f
}

func (f *freezer) serve() {
	for {
		client, err := f.listener.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", f.target)
		if err != nil {
			client.Close()
			continue
		}
		freeze := make(chan struct{})
		f.mu.Lock()
		f.frozen = append(f.frozen, freeze)
		f.open = append(f.open, client, server)
		f.mu.Unlock()
		go pipe(client, server, freeze)
		go pipe(server, client, freeze)
	}
}

// pipe copies until freeze is closed, then reads and drops nothing more.
func pipe(dst, src net.Conn, freeze chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-freeze:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// freezeAll freezes every connection open now; later ones flow.
func (f *freezer) freezeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.frozen {
		close(c)
	}
	f.frozen = nil
}

func TestHalfOpenFeedIsDetectedAndReconnects(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	direct := bed.Store(t)
	proxy := startFreezer(t, fmt.Sprintf("127.0.0.1:%d", bed.Postgres.Port()))
	u, err := url.Parse(bed.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = proxy.listener.Addr().String()
	pool, err := store.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	r := startReplica(t, store.New(pool), ValidatorConfig{FeedPingInterval: 200 * time.Millisecond, FeedPingTimeout: 300 * time.Millisecond})
	row, key := seed(t, direct, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	if status(t, r, key.Presented) != http.StatusOK {
		t.Fatal("warm-up")
	}

	// The feed's connection goes half-open (the pool's are replaced, so
	// lookups still reach the database); the revocation's notification is lost.
	proxy.freezeAll()
	pool.Reset()
	if _, err := direct.RevokeCredential(context.Background(), row.ID); err != nil {
		t.Fatal(err)
	}
	// The ping notices within its interval and timeout, the feed reconnects,
	// and the entry read before is revalidated.
	waitFeed(t, r, 0, 3*time.Second)
	waitFeed(t, r, 1, 5*time.Second)
	if s := status(t, r, key.Presented); s != http.StatusUnauthorized {
		t.Fatalf("after the feed reconnected the revoked key got %d", s)
	}
	if code, body := readyz(t, r); code != http.StatusOK || !strings.Contains(body, "listening") {
		t.Fatalf("/readyz after reconnecting: %d %q", code, body)
	}
}

func TestPostgresDownServesKnownKeysWithinTheStalenessWindow(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	st := bed.Store(t)
	const window = 3 * time.Second
	r := startReplica(t, st, ValidatorConfig{StaleWindow: window})
	before := r.validator.gen.Load()
	_, known := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	_, unknown := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	// The seeds' own notifications, if they came after the warm-up's read,
	// would rightly send the next lookup to Postgres: let them arrive first.
	testbed.Eventually(t, 5*time.Second, 5*time.Millisecond, "the seeds' notifications", func() error {
		if r.validator.gen.Load() < before+2 {
			return errors.New("not yet")
		}
		return nil
	})
	if status(t, r, known.Presented) != http.StatusOK {
		t.Fatal("warm-up")
	}
	bcrypts := testutil.ToFloat64(r.metrics.Bcrypts)

	stopped := time.Now()
	bed.Postgres.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = bed.Postgres.Start(context.Background())
		}
	})
	waitFeed(t, r, 0, 5*time.Second)
	// Until the window ends (it began no earlier than the stop) the known key
	// validates from memory, the unknown one is refused, and the replica stays ready.
	for time.Now().Before(stopped.Add(window - 300*time.Millisecond)) {
		if s := status(t, r, known.Presented); s != http.StatusOK {
			t.Fatalf("known key with Postgres down, %v after the stop: %d", time.Since(stopped), s)
		}
		if s := status(t, r, unknown.Presented); s == http.StatusOK {
			t.Fatal("a key never validated here was accepted with Postgres down")
		}
		if code, body := readyz(t, r); code != http.StatusOK || !strings.Contains(body, "degraded") {
			t.Fatalf("/readyz within the window: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// After it, nothing stale is served, and with the database gone the
	// replica says it cannot serve.
	testbed.Eventually(t, window+3*time.Second, 50*time.Millisecond, "known key refused after the window", func() error {
		if s := status(t, r, known.Presented); s == http.StatusOK {
			return errors.New("still accepted")
		}
		return nil
	})
	if code, body := readyz(t, r); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after the window with Postgres down: %d %q", code, body)
	}

	// Back: the key validates again, revalidated against its row without a new bcrypt.
	if err := bed.Postgres.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	waitFeed(t, r, 1, 15*time.Second)
	if s := status(t, r, known.Presented); s != http.StatusOK {
		t.Fatalf("known key after Postgres is back: %d", s)
	}
	if got := testutil.ToFloat64(r.metrics.Bcrypts); got != bcrypts {
		t.Fatalf("revalidating after the outage ran %v bcrypts", got-bcrypts)
	}
}
