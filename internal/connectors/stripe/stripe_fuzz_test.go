package stripe_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/stripe"
)

// Test-only signing secrets; failures name them, never print them.
const (
	secret      = "whsec_fuzz_8c1e5b2a9f3d4e60a7"
	otherSecret = "whsec_fuzz_other_27d4a1c9b3"
)

var configID = uuid.MustParse("0b6f3c2e-4a5d-4e8f-9a1b-2c3d4e5f6a7b")

// Rejection reasons Receive documents.
const (
	reasonNoHeader  = "no Stripe-Signature header"
	reasonSignature = "stripe: no v1 signature matches"
	reasonTimestamp = "stripe: signature timestamp outside the tolerance window"
	reasonNotEvent  = "signed body is not a Stripe event"
)

// FuzzReceive drives the Stripe adapter's webhook check with arbitrary
// bodies, timestamps and Stripe-Signature headers.
//
//   - A body signed with the endpoint's secret at a time within the
//     tolerance is accepted exactly when it is a Stripe event (JSON with
//     object "event", an evt_ id and a type), and is otherwise rejected as
//     not an event; extra v1 entries (a secret being rolled) change nothing.
//   - An accepted event's provider id, type and data come from the body; the
//     data carries the body as Stripe sent it (compacted), NUL escapes and
//     invalid UTF-8 included: making them storable is the store's job, and
//     it keeps the bytes it is given.
//   - The same body with one byte changed, or signed with another secret, or
//     at a time outside the tolerance, or without the header, is rejected
//     with a *connectors.Rejection giving the reason.
//   - header is a fuzzed Stripe-Signature in which {t} stands for a time
//     within the tolerance and {sig}/{SIG} for the right HMAC in lower/upper
//     case hex: whatever the fuzzer makes of it, it verifies only when it
//     carries the HMAC of the body at one of its timestamps; with the other
//     secret's HMAC it never does.
//   - No error repeats a secret or the expected signature; nothing panics.
func FuzzReceive(f *testing.F) {
	event := `{"id":"evt_1Q2w3E","object":"event","type":"payment_intent.succeeded","created":1763900000,"livemode":false,` +
		`"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000,"currency":"gbp"}}}`
	f.Add([]byte(event), int64(17), "t={t},v1={sig}")
	f.Add([]byte(event), int64(-100), "t={t},v1=6f6c642d7369676e6174757265,v1={sig},v0=deadbeef")
	f.Add([]byte(""), int64(0), "")
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"charge.succeeded","data":{"object":{"description":"a\u0000b"}}}`), int64(5), " t = {t} , v1 = {SIG} ")
	f.Add([]byte("{\"id\":\"evt_2\",\"object\":\"event\",\"type\":\"customer.updated\",\"data\":{\"name\":\"\xff\xfe\"}}"), int64(-239), "v1={sig},t={t}")
	f.Add([]byte(`{"id":"evt_3","object":"event","type":"charge.refunded","data":{"note":"\ud800 \udc00"}}`), int64(239), "t={t},v1={sig}")
	f.Add([]byte(`{"id":"evt_\u0000","object":"event","type":"x"}`), int64(1), "t={t},v1={sig}")
	f.Add([]byte(`{"id":"ch_1","object":"charge"}`), int64(60), "t={t},v1={sig}")
	f.Add([]byte(`{"id":"evt_4","object":"event","type":"x","created":"yesterday"}`), int64(2), "t=1,t={t},v1={sig}")
	f.Add([]byte(`not json`), int64(1<<40), "t={t},v1=zz")
	f.Add([]byte(event), int64(-1<<62), "t=0000{t},v1={sig},garbage")

	receiver := open(f)
	f.Fuzz(func(t *testing.T, body []byte, skew int64, header string) {
		now := time.Now()
		// Within the 300 s default tolerance with a minute to spare, so the
		// time Receive takes to run cannot push it out.
		within := now.Unix() + skew%240
		outside := 360 + int64(uint64(skew)%(1<<30))
		if skew < 0 {
			outside = -outside
		}
		outside += now.Unix()
		sig := mac(within, body, secret)
		secrets := []string{secret, otherSecret, sig}

		// Genuine, alone and among a rolled secret's signatures.
		genuine := "t=" + strconv.FormatInt(within, 10) + ",v1=" + sig
		ev, err := receive(t, receiver, body, genuine, secrets)
		want, isEvent := stripeEvent(body)
		if isEvent {
			if err != nil {
				t.Fatalf("a genuine event was refused: %v (body %q)", err, body)
			}
			checkEvent(t, ev, want, body)
		} else {
			rejected(t, err, reasonNotEvent)
		}
		rolled := "t=" + strconv.FormatInt(within, 10) + ",v1=" + mac(within, body, otherSecret) + ",v1=" + sig + ",v0=" + sig
		if ev2, err2 := receive(t, receiver, body, rolled, secrets); errString(err2) != errString(err) || !reflect.DeepEqual(ev2, ev) {
			t.Fatalf("with a rolled secret's signature too: %v, alone: %v", err2, err)
		}

		// Not genuine.
		tampered := append([]byte(nil), body...)
		if len(tampered) == 0 {
			tampered = []byte("{")
		} else {
			tampered[int(uint64(skew)%uint64(len(tampered)))] ^= byte(1 + uint64(skew)>>8%255)
		}
		_, err = receive(t, receiver, tampered, genuine, secrets)
		rejected(t, err, reasonSignature)
		_, err = receive(t, receiver, body, "t="+strconv.FormatInt(within, 10)+",v1="+mac(within, body, otherSecret), secrets)
		rejected(t, err, reasonSignature)
		_, err = receive(t, receiver, body, "t="+strconv.FormatInt(outside, 10)+",v1="+mac(outside, body, secret), secrets)
		rejected(t, err, reasonTimestamp)
		_, err = receive(t, receiver, body, "", secrets)
		rejected(t, err, reasonNoHeader)

		// Fuzzed headers.
		expand := func(key string) string {
			s := mac(within, body, key)
			return strings.NewReplacer("{t}", strconv.FormatInt(within, 10), "{sig}", s, "{SIG}", strings.ToUpper(s)).Replace(header)
		}
		h := expand(secret)
		_, err = receive(t, receiver, body, h, secrets)
		var rej *connectors.Rejection
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("header %q: %v is not a *connectors.Rejection", h, err)
		}
		// Accepted, or refused for what the body is: the signature passed.
		if verified := err == nil || rej.Reason == reasonNotEvent; verified && !carriesMAC(h, body, now) {
			t.Fatalf("header %q passed verification without the body's HMAC", h)
		}
		if h := expand(otherSecret); !carriesMAC(h, body, now) {
			_, err := receive(t, receiver, body, h, secrets)
			if !errors.As(err, &rej) || rej.Reason == reasonNotEvent {
				t.Fatalf("header %q with another secret's signature: %v", h, err)
			}
		}
	})
}

func open(f *testing.F) connectors.Receiver {
	adapter, err := stripe.Registration().New(connectors.Config{ID: configID, StoreID: "store-13",
		Credentials: func(context.Context) (connectors.Credentials, error) {
			return connectors.Credentials{APISecret: secret}, nil
		}})
	if err != nil {
		f.Fatal(err)
	}
	return adapter.(connectors.Receiver)
}

// receive posts body with a Stripe-Signature header (none when empty) and
// checks that no error gives away a secret or signature.
func receive(t *testing.T, r connectors.Receiver, body []byte, sigHeader string, secrets []string) (connectors.InboundEvent, error) {
	t.Helper()
	h := http.Header{}
	if sigHeader != "" {
		h.Set("Stripe-Signature", sigHeader)
	}
	ev, err := r.Receive(context.Background(), connectors.InboundRequest{Header: h, Body: body, RemoteIP: "203.0.113.7"})
	if err != nil {
		for i, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("an error repeats secret #%d", i)
			}
		}
	}
	return ev, err
}

func rejected(t *testing.T, err error, reason string) {
	t.Helper()
	var rej *connectors.Rejection
	if !errors.As(err, &rej) || rej.Reason != reason {
		t.Fatalf("got %v, want a rejection: %s", err, reason)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// mac is Stripe's v1 signature: hex HMAC-SHA256 of "<t>.<body>".
func mac(ts int64, body []byte, key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// carriesMAC reports whether a header holds, among its comma-separated
// k=v entries, a t within the tolerance (and a little more, for the time
// the test takes) and a v1 that is the body's HMAC at that t.
func carriesMAC(header string, body []byte, now time.Time) bool {
	var times []int64
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if n, err := strconv.ParseInt(v, 10, 64); k == "t" && err == nil {
			times = append(times, n)
		}
		if k == "v1" {
			sigs = append(sigs, strings.ToLower(v))
		}
	}
	for _, ts := range times {
		if d := ts - now.Unix(); d < -360 || d > 360 {
			continue
		}
		for _, s := range sigs {
			if s == mac(ts, body, secret) {
				return true
			}
		}
	}
	return false
}

type stripeEventFields struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Type     string `json:"type"`
	Created  int64  `json:"created"`
	Livemode bool   `json:"livemode"`
}

// stripeEvent reads body as Stripe defines an event.
func stripeEvent(body []byte) (stripeEventFields, bool) {
	var e stripeEventFields
	ok := json.Unmarshal(body, &e) == nil && e.Object == "event" && strings.HasPrefix(e.ID, "evt_") && e.Type != ""
	return e, ok
}

func checkEvent(t *testing.T, ev connectors.InboundEvent, want stripeEventFields, body []byte) {
	t.Helper()
	if ev.ProviderID != want.ID || ev.Type != "stripe."+want.Type {
		t.Fatalf("event %q of type %q; the body says %q, %q", ev.ProviderID, ev.Type, want.ID, want.Type)
	}
	if !json.Valid(ev.Data) {
		t.Fatalf("the event data is not JSON: %q", ev.Data)
	}
	var data struct {
		Provider, ConfigID, ProviderEventID string
		Livemode                            bool
		Created                             int64
		Event                               json.RawMessage
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	if data.Provider != "stripe" || data.ConfigID != configID.String() || data.ProviderEventID != want.ID ||
		data.Livemode != want.Livemode || data.Created != want.Created {
		t.Fatalf("data %s does not match the event", ev.Data)
	}
	// The event as Stripe sent it, compacted and HTML-escaped as
	// json.Marshal does with a RawMessage, and otherwise byte for byte.
	var compact, sent bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	json.HTMLEscape(&sent, compact.Bytes())
	if !bytes.Equal(data.Event, sent.Bytes()) {
		t.Fatalf("data carries the event %q; Stripe sent %q", data.Event, body)
	}
}
