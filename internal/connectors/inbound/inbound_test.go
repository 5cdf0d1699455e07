package inbound

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestStripeSignature(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"payment_intent.succeeded"}`)
	secret := "whsec_test_secret"
	now := time.Unix(1_800_000_000, 0)
	// Computed independently of SignStripe: HMAC-SHA256 of "t.body".
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.%s", now.Unix(), body)
	header := fmt.Sprintf("t=%d,v1=%s,v0=ignored", now.Unix(), hex.EncodeToString(m.Sum(nil)))
	if header[:len(SignStripe(body, secret, now))] != SignStripe(body, secret, now) {
		t.Fatal("SignStripe disagrees with the definition")
	}
	if err := VerifyStripe(header, body, secret, now.Add(time.Minute), StripeTolerance); err != nil {
		t.Fatalf("a good signature: %v", err)
	}
	// Several v1 entries (Stripe sends one per active secret during a roll): any may match.
	rolled := fmt.Sprintf("t=%d,v1=%s,%s", now.Unix(), hex.EncodeToString([]byte("old-signature-bytes")), header[len(fmt.Sprintf("t=%d,", now.Unix())):])
	if err := VerifyStripe(rolled, body, secret, now, StripeTolerance); err != nil {
		t.Fatalf("a match among several v1: %v", err)
	}
	cases := map[string]struct {
		header string
		body   []byte
		secret string
		now    time.Time
		want   error
	}{
		"wrong secret":    {header, body, "whsec_other", now, ErrStripeSignature},
		"changed body":    {header, []byte(`{"id":"evt_2"}`), secret, now, ErrStripeSignature},
		"replayed later":  {header, body, secret, now.Add(6 * time.Minute), ErrStripeTimestamp},
		"from the future": {header, body, secret, now.Add(-6 * time.Minute), ErrStripeTimestamp},
		"no timestamp":    {"v1=abcd", body, secret, now, ErrStripeHeader},
		"no v1":           {fmt.Sprintf("t=%d,v0=abcd", now.Unix()), body, secret, now, ErrStripeHeader},
		"garbage":         {"hello", body, secret, now, ErrStripeHeader},
		"bad hex":         {fmt.Sprintf("t=%d,v1=zz", now.Unix()), body, secret, now, ErrStripeHeader},
	}
	for name, tc := range cases {
		if err := VerifyStripe(tc.header, tc.body, tc.secret, tc.now, StripeTolerance); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestPayFastSignature(t *testing.T) {
	body := "m_payment_id=01AB&pf_payment_id=1089250&payment_status=COMPLETE&item_name=Test+Item&amount_gross=200.00" +
		"&name_first=First+Name&email_address=test%40example.com&merchant_id=10000100"
	fields, err := ParsePayFastForm(body)
	if err != nil {
		t.Fatal(err)
	}
	if fields[3] != (Field{"item_name", "Test Item"}) || fields[6].Value != "test@example.com" {
		t.Fatalf("parsed %v", fields)
	}
	// Computed independently: PHP urlencode of each value, in order, then the passphrase.
	plain := "m_payment_id=01AB&pf_payment_id=1089250&payment_status=COMPLETE&item_name=Test+Item&amount_gross=200.00" +
		"&name_first=First+Name&email_address=test%40example.com&merchant_id=10000100&passphrase=jt7NOE43FZPn"
	sum := md5.Sum([]byte(plain))
	want := hex.EncodeToString(sum[:])
	if got := SignPayFast(fields, "jt7NOE43FZPn"); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	signed, err := ParsePayFastForm(body + "&signature=" + want)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyPayFast(signed, "jt7NOE43FZPn"); err != nil {
		t.Fatalf("a good ITN: %v", err)
	}
	if err := VerifyPayFast(signed, "wrong-passphrase"); !errors.Is(err, ErrPayFastSignature) {
		t.Fatal("a wrong passphrase verified")
	}
	tampered, _ := ParsePayFastForm(string([]byte(body)[:len(body)-1]) + "1&signature=" + want)
	if err := VerifyPayFast(tampered, "jt7NOE43FZPn"); !errors.Is(err, ErrPayFastSignature) {
		t.Fatal("a changed field verified")
	}
	reordered := append([]Field{signed[1], signed[0]}, signed[2:]...)
	if err := VerifyPayFast(reordered, "jt7NOE43FZPn"); !errors.Is(err, ErrPayFastSignature) {
		t.Fatal("the order of fields must matter")
	}
	if err := VerifyPayFast(fields, "jt7NOE43FZPn"); !errors.Is(err, ErrPayFastSignature) {
		t.Fatal("an ITN without a signature verified")
	}
}

func TestPayFastFieldNamesCannotMergeFields(t *testing.T) {
	// Signed as "a=1&b=2" either way, were the name accepted.
	if _, err := ParsePayFastForm("a%3D1%26b=2"); err == nil {
		t.Fatal("a field name holding = and & was accepted")
	}
	fields, err := ParsePayFastForm("m_payment_id=01AB&pf_payment_id=1089250&payment_status=COMPLETE")
	if err != nil || len(fields) != 3 || fields[2] != (Field{"payment_status", "COMPLETE"}) {
		t.Fatalf("%v %v", fields, err)
	}
}
