package payfast_test

import (
	"context"
	"crypto/md5" //nolint:gosec // PayFast's ITN signature is defined as MD5.
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/payfast"
)

// Test-only credentials; failures never print the passphrases.
const (
	merchantID      = "10000100"
	passphrase      = "jt7NOE43FZPn-fuzz~ passphrase"
	otherPassphrase = "someone-elses-passphrase"
)

var configID = uuid.MustParse("7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f")

// Rejection reasons Receive documents.
const (
	reasonSignature = "payfast: ITN signature does not match"
	reasonMerchant  = "merchant_id is not this connector's merchant"
	reasonSource    = "source address is not in allowedSourceNetworks"
)

// FuzzReceive drives the PayFast adapter's ITN check with arbitrary form
// bodies and source addresses; PayFast's validate endpoint is played by
// loopback servers answering VALID or INVALID.
//
//   - Any body as received is either rejected with a *connectors.Rejection
//     or carries the right signature (MD5 of its fields, PHP-urlencoded, in
//     order, and the passphrase), this merchant's id, a payment id and a
//     status; PayFast is asked to confirm only such an ITN, with exactly the
//     signed fields.
//   - The body's fields, signed with the passphrase and this merchant's id,
//     are accepted when PayFast answers VALID, and the event's id, type and
//     data come from the fields (NUL and other bytes included: making them
//     storable is the store's job); rejected when PayFast answers INVALID.
//   - The signed ITN with one value changed or one field dropped, signed
//     with another passphrase, or for another merchant is rejected.
//   - Only sources in allowedSourceNetworks are heard.
//   - No error repeats a passphrase; nothing panics.
func FuzzReceive(f *testing.F) {
	itn := "m_payment_id=01AB&pf_payment_id=1089250&payment_status=COMPLETE&item_name=Test+Item&amount_gross=200.00" +
		"&name_first=First+Name&email_address=test%40example.com&merchant_id=10000100"
	f.Add(itn, "127.0.0.1", uint(3))
	f.Add(itn+"&signature=0123456789abcdef0123456789abcdef", "127.0.0.1", uint(0))
	f.Add("", "", uint(0))
	f.Add("pf_payment_id=1&payment_status=COMPLETE&custom_str1=a%00b&custom_str2=%FF%FE", "::ffff:127.0.0.2", uint(2))
	f.Add("pf_payment_id=%FF&payment_status=COMPLETE", "10.0.0.1", uint(1))
	f.Add("pf_payment_id=1&payment_status=PEND%00ING", "127.0.0.1", uint(1))
	f.Add("item_name=Fish+%26+Chips+%7E+%3Cb%3E&pf_payment_id=&payment_status=", "::1", uint(5))
	f.Add("a%3D1%26b=2&=&&==&%zz=1", "127.0.0.1%eth0", uint(4))
	f.Add("signature=&merchant_id=10000101&pf_payment_id=2&payment_status=FAILED", "not an address", uint(7))
	f.Add("item_description=\xff\x00&pf_payment_id=3&payment_status=CANCELLED", "127.255.255.255", uint(0))

	valid, invalid := startValidator(f, "VALID"), startValidator(f, "INVALID")
	hears := open(f, valid, `,"allowedSourceNetworks":["127.0.0.0/8"]`)
	refuses := open(f, invalid, "")
	f.Fuzz(func(t *testing.T, body, remote string, pick uint) {
		// The body as received.
		calls := valid.calls()
		ev, err := receive(t, hears, body, "127.0.0.1")
		fields, parsed := parseForm(body)
		if err == nil {
			if !parsed || !signedBy(fields, passphrase) || last(fields, "merchant_id") != merchantID ||
				last(fields, "pf_payment_id") == "" || last(fields, "payment_status") == "" {
				t.Fatalf("accepted an ITN that is not PayFast's for this merchant: %q", body)
			}
			checkEvent(t, ev, fields)
			if got := valid.lastPosted(); got != paramString(fields) {
				t.Fatalf("asked PayFast to confirm %q; the ITN's fields are %q", got, paramString(fields))
			}
		} else {
			rejected(t, err, "")
			if valid.calls() != calls && (!parsed || !signedBy(fields, passphrase) || last(fields, "merchant_id") != merchantID) {
				t.Fatalf("asked PayFast to confirm an ITN not signed for this merchant: %q", body)
			}
		}

		// The body's fields, as PayFast would sign them for us.
		signed := signable(fields)
		ours := append(append([]field(nil), signed...), field{"merchant_id", merchantID})
		good := form(ours) + "&signature=" + sign(ours, passphrase)
		ev, err = receive(t, hears, good, "127.0.0.1")
		if err != nil {
			t.Fatalf("a signed ITN was refused: %v (%q)", err, good)
		}
		checkEvent(t, ev, ours)
		if got := valid.lastPosted(); got != paramString(ours) {
			t.Fatalf("asked PayFast to confirm %q; the ITN's fields are %q", got, paramString(ours))
		}
		_, err = receive(t, refuses, good, "203.0.113.9")
		rejected(t, err, `PayFast did not confirm the ITN (answered "INVALID")`)

		// Only sources in 127.0.0.0/8 are heard, and all of them are.
		_, err = receive(t, hears, good, remote)
		addr, perr := netip.ParseAddr(remote)
		if loopback := perr == nil && addr.Unmap().Is4() && addr.Unmap().As4()[0] == 127; !loopback {
			rejected(t, err, reasonSource)
		} else if err != nil {
			t.Fatalf("an ITN from %q, in 127.0.0.0/8, was refused: %v", remote, err)
		}

		// Not genuine: the signature of ours on other fields, or ours
		// signed with another passphrase or for another merchant.
		i := int(pick % uint(len(ours)))
		changed := append([]field(nil), ours...)
		changed[i].value += "1"
		dropped := append(append([]field(nil), ours[:i]...), ours[i+1:]...)
		for _, other := range [][]field{changed, dropped} {
			_, err = receive(t, hears, form(other)+"&signature="+sign(ours, passphrase), "127.0.0.1")
			rejected(t, err, reasonSignature)
		}
		_, err = receive(t, hears, form(ours)+"&signature="+sign(ours, otherPassphrase), "127.0.0.1")
		rejected(t, err, reasonSignature)
		theirs := append(append([]field(nil), signed...), field{"merchant_id", "10000101"})
		_, err = receive(t, hears, form(theirs)+"&signature="+sign(theirs, passphrase), "127.0.0.1")
		rejected(t, err, reasonMerchant)
	})
}

// validator plays PayFast's /eng/query/validate on loopback.
type validator struct {
	*httptest.Server
	mu     sync.Mutex
	n      int
	posted string
}

func startValidator(f *testing.F, answer string) *validator {
	v := &validator{}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/eng/query/validate" ||
			r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "not how PayFast is asked", http.StatusBadRequest)
			return
		}
		v.mu.Lock()
		v.n++
		v.posted = string(b)
		v.mu.Unlock()
		fmt.Fprintln(w, answer)
	}))
	f.Cleanup(v.Close)
	return v
}

func (v *validator) calls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}

func (v *validator) lastPosted() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.posted
}

func open(f *testing.F, v *validator, more string) connectors.Receiver {
	adapter, err := payfast.Registration().New(connectors.Config{ID: configID, StoreID: "store-7",
		Settings: json.RawMessage(`{"endpoint":"` + v.URL + `"` + more + `}`), HTTPClient: v.Client(),
		Credentials: func(context.Context) (connectors.Credentials, error) {
			return connectors.Credentials{APIKey: merchantID, APISecret: passphrase}, nil
		}})
	if err != nil {
		f.Fatal(err)
	}
	return adapter.(connectors.Receiver)
}

func receive(t *testing.T, r connectors.Receiver, body, remote string) (connectors.InboundEvent, error) {
	t.Helper()
	ev, err := r.Receive(context.Background(), connectors.InboundRequest{
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte(body), RemoteIP: remote})
	if err != nil && (strings.Contains(err.Error(), passphrase) || strings.Contains(err.Error(), otherPassphrase)) {
		t.Fatal("an error repeats a passphrase")
	}
	return ev, err
}

// rejected checks err is a Rejection, with reason unless that is empty.
func rejected(t *testing.T, err error, reason string) {
	t.Helper()
	var rej *connectors.Rejection
	if !errors.As(err, &rej) || reason != "" && rej.Reason != reason {
		t.Fatalf("got %v, want a rejection %s", err, reason)
	}
}

func checkEvent(t *testing.T, ev connectors.InboundEvent, fields []field) {
	t.Helper()
	id, status := last(fields, "pf_payment_id"), last(fields, "payment_status")
	if ev.ProviderID != id+":"+status || ev.Type != "payfast.payment."+strings.ToLower(status) {
		t.Fatalf("event %q of type %q from payment %q with status %q", ev.ProviderID, ev.Type, id, status)
	}
	values := map[string]string{}
	for _, f := range fields {
		if f.name != "signature" {
			values[f.name] = f.value
		}
	}
	var data struct {
		Provider, ConfigID, PaymentID, MerchantPaymentID, PaymentStatus, AmountGross string
		Fields                                                                       map[string]string
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatal(err)
	}
	// The fields as JSON holds them: what is not UTF-8 made so, as
	// json.Marshal does; NUL and the rest as they came (storing them is
	// the store's job).
	var want map[string]string
	b, _ := json.Marshal(values)
	_ = json.Unmarshal(b, &want)
	if data.Provider != "payfast" || data.ConfigID != configID.String() || data.PaymentID != want["pf_payment_id"] ||
		data.MerchantPaymentID != want["m_payment_id"] || data.PaymentStatus != want["payment_status"] ||
		data.AmountGross != want["amount_gross"] || !reflect.DeepEqual(data.Fields, want) {
		t.Fatalf("data %s does not match the ITN's fields %q", ev.Data, values)
	}
}

type field struct{ name, value string }

// parseForm splits a form body into its fields, in order.
func parseForm(body string) ([]field, bool) {
	var fields []field
	for _, pair := range strings.Split(body, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || !plainName(name) {
			return nil, false
		}
		fields = append(fields, field{name, value})
	}
	return fields, true
}

// plainName: PayFast signs names unencoded, so only names that need no
// encoding are taken (others could merge or split fields under one signature).
func plainName(name string) bool {
	return name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
}

func last(fields []field, name string) string {
	v := ""
	for _, f := range fields {
		if f.name == name {
			v = f.value
		}
	}
	return v
}

// signable is fields without signature and merchant_id, and with a payment
// id and status when they lack one.
func signable(fields []field) []field {
	var out []field
	for _, f := range fields {
		if f.name != "signature" && f.name != "merchant_id" && plainName(f.name) {
			out = append(out, f)
		}
	}
	if last(out, "pf_payment_id") == "" {
		out = append(out, field{"pf_payment_id", "1089250"})
	}
	if last(out, "payment_status") == "" {
		out = append(out, field{"payment_status", "COMPLETE"})
	}
	return out
}

// form encodes fields as a form body.
func form(fields []field) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, url.QueryEscape(f.name)+"="+url.QueryEscape(f.value))
	}
	return strings.Join(parts, "&")
}

// phpURLEncode is PHP's urlencode: letters, digits and -_. kept, space as
// +, every other byte %XX in upper case.
func phpURLEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// paramString is what PayFast signs and is asked to confirm: the fields
// but the signature, as name=urlencode(value), in order.
func paramString(fields []field) string {
	var parts []string
	for _, f := range fields {
		if f.name != "signature" {
			parts = append(parts, f.name+"="+phpURLEncode(f.value))
		}
	}
	return strings.Join(parts, "&")
}

func sign(fields []field, passphrase string) string {
	sum := md5.Sum([]byte(paramString(fields) + "&passphrase=" + phpURLEncode(passphrase))) //nolint:gosec // defined by PayFast
	return hex.EncodeToString(sum[:])
}

// signedBy is VerifyPayFast's reading: the last signature field, in any case.
func signedBy(fields []field, passphrase string) bool {
	return strings.ToLower(last(fields, "signature")) == sign(fields, passphrase)
}
