package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Attempts that take longer than the lease (the endpoint answers after 3 s,
// the lease is 1 s), with a second replica waiting for work: the claims are
// renewed while held, so each delivery is sent once, on its first attempt.
func TestClaimsHeldLongerThanTheLeaseAreRenewedNotTakenOver(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	recv := newReceiver(t)
	recv.set(http.StatusOK, 3*time.Second)
	sub, _ := e.subscribe(t, "store-l", recv.URL, []string{"order.*"}, func(s *store.Subscription) { s.MaxConcurrency = 2 })
	cfg := Config{ClaimLease: time.Second, BreakerTrips: 1000}
	e.run(t, cfg)
	e.run(t, cfg)
	e.produce(t, goodEvents(t, "store-l", 6)...)
	eventually(t, 60*time.Second, "all six delivered", func() error {
		var n int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'DELIVERED'
			AND attempt_number = 1`, sub.ID).Scan(&n)
		if err != nil || n != 6 {
			return fmt.Errorf("%d of 6: %v", n, err)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a take-over would send again within a lease
	perDelivery := map[string]int{}
	for _, r := range recv.requests() {
		perDelivery[r.header.Get(HeaderDelivery)]++
	}
	if len(perDelivery) != 6 {
		t.Fatalf("%d delivery ids, want 6", len(perDelivery))
	}
	for id, n := range perDelivery {
		if n != 1 {
			t.Fatalf("delivery %s sent %d times: its claim was taken over while held", id, n)
		}
	}
}

// A signing secret missing from Vault for longer than SecretMissingMaxAge
// is gone for good: the subscription's waiting deliveries end, with the
// reason, and stop being due.
func TestASecretGoneForGoodEndsItsDeliveries(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	recv := newReceiver(t)
	sub, _ := e.subscribe(t, "store-g", recv.URL, []string{"order.*"}, nil)
	if err := e.vault.Delete(ctx, "webhook/"+sub.ID.String()+"/secret"); err != nil {
		t.Fatal(err)
	}
	e.run(t, Config{SecretMissingMaxAge: 2 * time.Second})
	e.produce(t, goodEvents(t, "store-g", 4)...)
	eventually(t, 30*time.Second, "the deliveries ended with the reason", func() error {
		var n int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'DEAD_LETTERED'
			AND attempt_number = 0 AND last_error LIKE 'the signing secret has been missing from Vault since %longer than 2s%'`, sub.ID).Scan(&n)
		if err != nil || n != 4 {
			return fmt.Errorf("%d of 4: %v", n, err)
		}
		return nil
	})
	if n, err := e.store.DueCount(ctx); err != nil || n != 0 {
		t.Fatalf("due deliveries %d (%v), want 0", n, err)
	}
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("%d requests sent without a secret", n)
	}
	stats, err := e.store.SubscriptionStatsAll(ctx)
	if st := stats[sub.ID]; err != nil || st.DeadLettered != 4 || !strings.Contains(st.LastDeadLetterReason, "signing secret") {
		t.Fatalf("stats %+v (%v)", st, err)
	}
}

func TestHoldsForgetLostClaimsAndLapseOnTheirOwn(t *testing.T) {
	h := newHolds(store.WebhookClaims, time.Second)
	kept, lost, recorded := uuid.New(), uuid.New(), uuid.New()
	token := uuid.New()
	sent := time.Now()
	h.add(sent, store.Held{ID: kept, Token: token}, store.Held{ID: lost, Token: token}, store.Held{ID: recorded, Token: token})
	for _, id := range []uuid.UUID{kept, lost, recorded} {
		if !h.valid(id) {
			t.Fatalf("a fresh claim is not valid")
		}
	}
	held := h.snapshot()
	h.drop(recorded) // recorded while the renewal was on its way
	if n := h.renewed(time.Now(), held, map[uuid.UUID]bool{kept: true}); n != 1 {
		t.Fatalf("%d lost, want 1", n)
	}
	if !h.valid(kept) || h.valid(lost) || h.valid(recorded) {
		t.Fatalf("after renewal: kept %v lost %v recorded %v", h.valid(kept), h.valid(lost), h.valid(recorded))
	}
	// Not renewed for longer than the lease, less the margin: not valid.
	h.add(time.Now().Add(-900*time.Millisecond), store.Held{ID: kept, Token: token})
	if h.valid(kept) {
		t.Fatal("a claim that may have lapsed is still valid")
	}
	var none *holds
	if !none.valid(kept) {
		t.Fatal("ephemeral mode holds everything")
	}
}

func TestStopsFindGapsThatOverlapAnAttempt(t *testing.T) {
	t0 := time.Now()
	s := &stops{last: t0}
	for i := 1; i <= 10; i++ {
		s.tick(t0.Add(time.Duration(i) * stoppedTick))
	}
	if _, stopped := s.during(t0, t0.Add(time.Second)); stopped {
		t.Fatal("regular ticks counted as a stop")
	}
	// 20 s without a tick, as SIGSTOP makes.
	resumed := t0.Add(time.Second + 20*time.Second)
	if gap, stopped := s.during(t0.Add(500*time.Millisecond), resumed); !stopped || gap < 19*time.Second {
		t.Fatalf("a stop not yet ticked over: %v %v", gap, stopped)
	}
	s.tick(resumed)
	if gap, stopped := s.during(t0.Add(500*time.Millisecond), resumed.Add(time.Millisecond)); !stopped || gap < 19*time.Second {
		t.Fatalf("the stop overlapping the attempt: %v %v", gap, stopped)
	}
	if _, stopped := s.during(resumed.Add(time.Millisecond), resumed.Add(50*time.Millisecond)); stopped {
		t.Fatal("an attempt after the stop was forgiven")
	}
}
