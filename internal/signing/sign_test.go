package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"
)

func TestSS3MatchesTheContract(t *testing.T) {
	body := []byte(`{"orderId":"o-1"}`)
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(body)
	if got := SS3(body, "s3cret"); got != hex.EncodeToString(m.Sum(nil)) {
		t.Fatalf("X-SS3-Signature = %s", got)
	}
	both := SS3(body, "new", "old")
	if !VerifySS3("old", body, both) || !VerifySS3("new", body, both) || VerifySS3("other", body, both) {
		t.Fatal("a rotation's two signatures verify with either secret only")
	}
	if VerifySS3("new", []byte(`{"orderId":"o-2"}`), both) {
		t.Fatal("a changed body verified")
	}
}

// The Standard Webhooks specification's published example.
func TestStandardWebhooksSpecExample(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id := "msg_p5jXN8AQM9LWM0D4loKWxJek"
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := StandardWebhooks(id, ts, body, secret); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if !VerifyStandardWebhooks(secret, id, "1614265330", want, body, ts.Add(time.Minute), 5*time.Minute) {
		t.Fatal("verification within tolerance failed")
	}
	if VerifyStandardWebhooks(secret, id, "1614265330", want, body, ts.Add(10*time.Minute), 5*time.Minute) {
		t.Fatal("a replay outside the tolerance verified")
	}
}
