package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// FuzzRecordedAnswer: whatever an endpoint answers and whatever error an
// attempt ends with, the outcome is recorded (Postgres refuses nothing),
// and what is stored is the input itself when it was valid UTF-8 without
// NUL, else its cleaned form, flagged; cleaning is stable.
func FuzzRecordedAnswer(f *testing.F) {
	for _, s := range hostileTexts {
		f.Add(s, "the endpoint answered 500: "+s)
	}
	f.Add("receiver says hi", "")
	bed := testbed.Start(f, testbed.Needs{Postgres: true})
	st := bed.Store(f)
	ctx := context.Background()
	sub := store.Subscription{ID: uuid.New(), StoreID: "store-f", Name: "f", TargetURL: "https://example.com/f", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3, MaxConcurrency: 1}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		f.Fatal(err)
	}
	delivery := uuid.New()
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: delivery, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-f",
		EventType: "order.placed", Payload: []byte(`{}`)}}, store.NewClaim(time.Minute)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body, attemptErr string) {
		// Bounded: a write that hangs fails with its input.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		clean, changed := store.Text(body)
		if !utf8.ValidString(clean) || strings.IndexByte(clean, 0) >= 0 {
			t.Fatalf("Text(%q) = %q: not storable", body, clean)
		}
		if fine := utf8.ValidString(body) && strings.IndexByte(body, 0) < 0; changed == fine || (fine && clean != body) {
			t.Fatalf("Text(%q) = %q, changed %v", body, clean, changed)
		}
		if again, changedAgain := store.Text(clean); changedAgain || again != clean {
			t.Fatalf("Text is not stable on %q", clean)
		}
		status := 500
		err := st.RecordOutcomesAndStats(ctx, []store.Outcome{{DeliveryID: delivery, Status: store.DeliveryFailed, Attempts: 1,
			HTTPStatus: &status, ResponseBody: &body, Error: attemptErr}},
			[]store.StatsDelta{{SubscriptionID: sub.ID, FailedAttempts: 1, TrailingFailures: 1, LastAttemptAt: time.Now(),
				LastHTTPStatus: &status, LastError: attemptErr, DeadLetterReason: attemptErr}})
		if err != nil {
			t.Fatalf("recording body %q, error %q: %v", body, attemptErr, err)
		}
		var storedBody, storedErr string
		var flagged bool
		if err := st.Pool().QueryRow(ctx, `SELECT response_body, response_body_sanitised, COALESCE(last_error, '') FROM webhook_deliveries
			WHERE delivery_id = $1`, delivery).Scan(&storedBody, &flagged, &storedErr); err != nil {
			t.Fatal(err)
		}
		if wantErr, _ := store.Text(attemptErr); storedBody != clean || flagged != changed || storedErr != wantErr {
			t.Fatalf("stored %q (flagged %v) and %q for %q and %q", storedBody, flagged, storedErr, body, attemptErr)
		}
	})
}

// FuzzJSONBCopy: for any JSON document, Postgres takes what the store
// writes to a jsonb column (the document, or its sanitised copy), except
// for the two refusals no scan foresees (numbers beyond numeric's range,
// nesting beyond the stack), which the careful write turns into a flagged
// JSON null; a document the copy leaves alone is stored as it is.
func FuzzJSONBCopy(f *testing.F) {
	for _, h := range hostileDocs {
		f.Add([]byte(h.doc))
	}
	f.Add([]byte(`"\ud800\ud800\udc00"`))
	f.Add([]byte(`{"a":"\\\u0000\"\ud800"}`))
	bed := testbed.Start(f, testbed.Needs{Postgres: true})
	st := bed.Store(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			return
		}
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cp := store.JSONBCopy(doc)
		stored := string(doc)
		if cp != nil {
			stored = *cp
			if !json.Valid([]byte(stored)) || !utf8.ValidString(stored) {
				t.Fatalf("the copy of %q is %q: no longer valid JSON", doc, stored)
			}
		}
		var out []byte
		err := st.Pool().QueryRow(ctx, `SELECT $1::text::jsonb::text`, stored).Scan(&out)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
		case errors.As(err, &pgErr) && (pgErr.Code == "22003" || pgErr.Code == "54001"):
			var isNull bool
			if err := st.Pool().QueryRow(ctx, `SELECT io_jsonb_or_null($1, NULL) IS NULL`, stored).Scan(&isNull); err != nil || !isNull {
				t.Fatalf("the careful write does not catch %v: %v", pgErr.Code, err)
			}
		default:
			t.Fatalf("Postgres refused the stored form %q of %q: %v", stored, doc, err)
		}
	})
}
