package amazon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
)

// backlog adds n orders, ten seconds apart from start, and returns their ids.
func backlog(fake *marketplacetest.Amazon, start time.Time, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("114-%07d-0000001", i)
		fake.AddOrder(marketplacetest.AmazonOrder{ID: ids[i], Purchased: start.Add(time.Duration(i) * 10 * time.Second),
			Status: "Unshipped", Amount: "9.99", Currency: "USD"})
	}
	return ids
}

func orderIDs(t *testing.T, res connectors.PollResult) []string {
	t.Helper()
	var ids []string
	for _, e := range res.Events {
		var data struct {
			OrderID string `json:"marketplaceOrderId"`
		}
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, data.OrderID)
	}
	return ids
}

type cursorJSON struct {
	V            int       `json:"v"`
	CreatedAfter time.Time `json:"createdAfter"`
	NextToken    string    `json:"nextToken"`
}

func decodeCursor(t *testing.T, raw string) cursorJSON {
	t.Helper()
	var c cursorJSON
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatalf("cursor %q: %v", raw, err)
	}
	return c
}

func TestPollWalksABacklogOnePagePerCall(t *testing.T) {
	fake, creds := newFake(t)
	fake.PageSize = 125
	start := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
	ids := backlog(fake, start, 2500)
	a := open(t, fake, creds)

	seen := map[string]int{}
	cursor, pages := "", 0
	for more := true; more; pages++ {
		if pages > 20 {
			t.Fatal("more than 20 pages for 2,500 orders at 125 a page")
		}
		res, err := a.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		if len(res.Events) != 125 {
			t.Fatalf("page %d: %d orders, want 125", pages+1, len(res.Events))
		}
		for _, id := range orderIDs(t, res) {
			seen[id]++
		}
		if got := len(fake.Calls()); got != pages+1 {
			t.Fatalf("after page %d: %d getOrders calls, want one per Poll", pages+1, got)
		}
		cursor, more = res.Cursor, res.More
	}
	if pages != 20 || len(seen) != len(ids) {
		t.Fatalf("%d pages, %d distinct orders; want 20 and %d", pages, len(seen), len(ids))
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("order %s came %d times", id, seen[id])
		}
	}
	// The next walk starts at the newest order.
	if c := decodeCursor(t, cursor); c.NextToken != "" || !c.CreatedAfter.Equal(start.Add(2499*10*time.Second)) {
		t.Errorf("cursor after the walk: %+v, want createdAfter %v and no nextToken", c, start.Add(2499*10*time.Second))
	}

	// The burst of 20 is spent: the next turn is about a minute away, more
	// than this call's budget, so it says when rather than failing.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := a.Poll(ctx, cursor)
	if err != nil {
		t.Fatalf("a rate turn beyond the budget: %v, want no error", err)
	}
	if !res.More || res.Wait <= time.Second || res.Wait > 67*time.Second || res.Cursor != cursor || len(res.Events) != 0 {
		t.Errorf("a rate turn beyond the budget: more %v, wait %v, cursor %q, %d events; want more, a wait over 1s up to 67s, the same cursor",
			res.More, res.Wait, res.Cursor, len(res.Events))
	}
	if got := len(fake.Calls()); got != 20 {
		t.Errorf("%d getOrders calls, want still 20", got)
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}

func TestPollFailingPageIsFetchedAgainFromItsCursor(t *testing.T) {
	fake, creds := newFake(t)
	fake.PageSize = 100
	ids := backlog(fake, time.Now().Add(-5*time.Hour).Truncate(time.Second), 500)
	fake.FailOrdersPage(3, 1)
	a := open(t, fake, creds)

	var got []string
	cursor := ""
	for range 2 {
		res, err := a.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		got, cursor = append(got, orderIDs(t, res)...), res.Cursor
	}
	if _, err := a.Poll(context.Background(), cursor); err == nil || connectors.IsPermanent(err) {
		t.Fatalf("page 3 answered 503: got %v, want a retryable error", err)
	}
	// The caller kept page 2's cursor; calling again fetches page 3.
	for more := true; more; {
		res, err := a.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		got, cursor, more = append(got, orderIDs(t, res)...), res.Cursor, res.More
	}
	if len(got) != len(ids) {
		t.Fatalf("%d orders, want %d", len(got), len(ids))
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("order %d is %s, want %s (each once, in order)", i, got[i], ids[i])
		}
	}
	if fake.Failed() != 1 {
		t.Errorf("%d injected failures, want 1", fake.Failed())
	}
}

func TestPollExpiredNextTokenStartsTheWalkAgain(t *testing.T) {
	fake, creds := newFake(t)
	fake.PageSize = 100
	start := time.Now().Add(-5 * time.Hour).Truncate(time.Second)
	ids := backlog(fake, start, 500)
	a := open(t, fake, creds)
	// A cursor as stored before page-by-page polling: orders from the 101st on.
	from := start.Add(100 * 10 * time.Second).UTC().Format(time.RFC3339)

	first, err := a.Poll(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.Poll(context.Background(), first.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	fake.ExpireNextTokens()
	res, err := a.Poll(context.Background(), second.Cursor)
	if err != nil {
		t.Fatalf("an expired NextToken: %v, want the walk started again", err)
	}
	if fake.ExpiredTokens() != 1 {
		t.Fatalf("%d NextTokens refused as expired, want 1", fake.ExpiredTokens())
	}
	calls := fake.Calls()
	if q := calls[len(calls)-1].Query; q.Get("CreatedAfter") != from || q.Get("NextToken") != "" {
		t.Errorf("after the refusal: getOrders %v, want CreatedAfter=%s from the cursor", q, from)
	}
	if got := orderIDs(t, res); !res.More || len(got) != 100 || got[0] != ids[100] || res.Events[0].ID != first.Events[0].ID {
		t.Errorf("after the refusal: more %v, %d orders from %v; want the walk's first page again, same event ids", res.More, len(got), got[:min(1, len(got))])
	}
	// And the walk goes on to the end.
	seen := map[string]bool{}
	for cursor, more := res.Cursor, res.More; more; {
		page, err := a.Poll(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range orderIDs(t, page) {
			seen[id] = true
		}
		cursor, more = page.Cursor, page.More
	}
	if len(seen) != 300 || !seen[ids[499]] || seen[ids[99]] {
		t.Errorf("the rest of the walk: %d orders (the newest: %v, one before the cursor: %v); want the last 300", len(seen), seen[ids[499]], seen[ids[99]])
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}

func TestPollTakesTheOldPlainTimeCursor(t *testing.T) {
	fake, creds := newFake(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := backlog(fake, start, 3) // two on the first page
	a := open(t, fake, creds)
	from := start.Add(10 * time.Second).UTC().Format(time.RFC3339)

	res, err := a.Poll(context.Background(), from)
	if err != nil {
		t.Fatal(err)
	}
	if got := orderIDs(t, res); len(got) != 2 || got[0] != ids[1] || got[1] != ids[2] || res.More {
		t.Errorf("from %s: orders %v, more %v; want %v and no more", from, got, res.More, ids[1:])
	}
	if q := fake.Calls()[0].Query; q.Get("CreatedAfter") != from {
		t.Errorf("getOrders %v, want CreatedAfter=%s", q, from)
	}
	if c := decodeCursor(t, res.Cursor); c.V != 1 || !c.CreatedAfter.Equal(start.Add(20*time.Second)) {
		t.Errorf("next cursor %+v, want version 1 from the newest order", c)
	}
	if _, err := a.Poll(context.Background(), "yesterday"); err == nil {
		t.Error("a cursor that is neither a time nor ours was taken")
	}
	if n := len(fake.Calls()); n != 1 {
		t.Errorf("%d getOrders calls, want 1 (none for a bad cursor)", n)
	}
}
