package inbound

import (
	"crypto/md5" //nolint:gosec // PayFast's ITN signature is defined as MD5.
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
)

// ErrPayFastSignature: the ITN's signature does not match its fields.
var ErrPayFastSignature = errors.New("payfast: ITN signature does not match")

// Field is one posted name=value pair, in the order PayFast sent it; the
// signature covers the fields in that order, so a url.Values map will not do.
type Field struct{ Name, Value string }

// ParsePayFastForm splits an application/x-www-form-urlencoded ITN body into
// its fields in order.
func ParsePayFastForm(body string) ([]Field, error) {
	var fields []Field
	for _, pair := range strings.Split(body, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, err
		}
		// PayFast signs names unencoded: a name holding "=" or "&" would
		// let fields be merged or split without changing the signed text.
		if !fieldName(name) {
			return nil, errors.New("a field name is not letters, digits and underscores")
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, err
		}
		fields = append(fields, Field{name, value})
	}
	return fields, nil
}

func fieldName(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return name != ""
}

// VerifyPayFast checks an ITN's "signature" field: MD5 (lowercase hex) of the
// other fields as name=urlencoded(value) joined by "&" in the order received,
// with "&passphrase=<passphrase>" appended when the merchant set one.
func VerifyPayFast(fields []Field, passphrase string) error {
	var got string
	for _, f := range fields {
		if f.Name == "signature" {
			got = f.Value
		}
	}
	want := SignPayFast(fields, passphrase)
	if got == "" || subtle.ConstantTimeCompare([]byte(strings.ToLower(got)), []byte(want)) != 1 {
		return ErrPayFastSignature
	}
	return nil
}

// SignPayFast computes the signature of fields (any "signature" field is
// left out), as PayFast does.
func SignPayFast(fields []Field, passphrase string) string {
	s := PayFastParamString(fields)
	if passphrase != "" {
		s += "&passphrase=" + payfastEncode(passphrase)
	}
	sum := md5.Sum([]byte(s)) //nolint:gosec // defined by PayFast
	return hex.EncodeToString(sum[:])
}

// PayFastParamString is the fields but the signature, encoded in order: what
// is signed, and what is posted back to PayFast to confirm an ITN.
func PayFastParamString(fields []Field) string {
	var parts []string
	for _, f := range fields {
		if f.Name == "signature" {
			continue
		}
		parts = append(parts, f.Name+"="+payfastEncode(f.Value))
	}
	return strings.Join(parts, "&")
}

// payfastEncode is PHP's urlencode, which PayFast uses: spaces as "+",
// percent-escapes in upper case, and "~" escaped too.
func payfastEncode(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "~", "%7E")
}
