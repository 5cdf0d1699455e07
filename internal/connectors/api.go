package connectors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// API calls one marketplace's JSON API under a base URL.
type API struct {
	Base   *url.URL
	Client *http.Client
	// Authorize adds the call's credentials (a bearer token, say).
	Authorize func(ctx context.Context, req *http.Request) error
}

// StatusError is a non-2xx answer; Body is the start of the answer, which
// marketplaces use for their error codes.
type StatusError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s answered %d: %s", e.Method, e.Path, e.Status, e.Body)
}

// Do sends body (marshalled to JSON unless nil) and decodes a JSON answer
// into out (unless nil). 408, 429 and 5xx answers and transport failures
// are retryable; other 4xx answers are Permanent.
func (a *API) Do(ctx context.Context, method, path string, query url.Values, header http.Header, body, out any) error {
	u := a.Base.JoinPath(path)
	u.RawQuery = query.Encode()
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Permanent(fmt.Errorf("encode %s %s: %w", method, path, err))
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return Permanent(fmt.Errorf("build %s %s: %w", method, path, err))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if a.Authorize != nil {
		if err := a.Authorize(ctx, req); err != nil {
			return fmt.Errorf("authorize %s %s: %w", method, path, err)
		}
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, redactURL(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Method: method, Path: path, Status: resp.StatusCode, Body: truncate(string(data), 300)}
		if resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500 {
			return se
		}
		return Permanent(se)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return nil
}

// BearerFrom authorizes requests with a token from tokens.
func BearerFrom(tokens func(context.Context) (*oauth2.Token, error), header string) func(context.Context, *http.Request) error {
	return func(ctx context.Context, req *http.Request) error {
		tok, err := tokens(ctx)
		if err != nil {
			return err
		}
		if header == "" {
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		} else {
			req.Header.Set(header, tok.AccessToken)
		}
		return nil
	}
}

// TokenCache keeps an access token for a connector and gets a new one when
// it expires or when the credentials in Vault change.
type TokenCache struct {
	mu     sync.Mutex
	digest [32]byte
	source oauth2.TokenSource
}

// Token returns a valid access token, building a token source from the
// current credentials with build when they changed.
func (c *TokenCache) Token(ctx context.Context, cfg Config, build func(context.Context, Credentials) (oauth2.TokenSource, error)) (*oauth2.Token, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("no credentials available")
	}
	creds, err := cfg.Credentials(ctx)
	if err != nil {
		// Our outage (Vault), not the marketplace's: nothing was sent.
		return nil, Deferred(fmt.Errorf("reading the connector's credentials: %w", err))
	}
	digest := sha256.Sum256([]byte(creds.APIKey + "\x00" + creds.APISecret + "\x00" + creds.RefreshToken))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.source == nil || digest != c.digest {
		// The token sources fetch with this context's client, long after
		// this call: it must not be the caller's (cancelled) context.
		base := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, cfg.HTTPClient)
		src, err := build(base, creds)
		if err != nil {
			return nil, err
		}
		c.source, c.digest = oauth2.ReuseTokenSource(nil, src), digest
	}
	tok, err := c.source.Token()
	if err != nil {
		return nil, fmt.Errorf("token exchange: %w", describeTokenError(err))
	}
	return tok, nil
}

// describeTokenError keeps the provider's error code and drops the rest of
// the answer and the URL, which are not ours to log.
func describeTokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "no error code"
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Errorf("the token endpoint answered %d (%s)", status, code)
	}
	return redactURL(err)
}

// redactURL drops query strings from url.Errors (they may carry tokens).
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		if perr == nil {
			u.RawQuery = ""
			return fmt.Errorf("%s %s: %w", ue.Op, u.Redacted(), ue.Err)
		}
	}
	return err
}

// DecodeSettings unmarshals settings into dst, refusing unknown keys so a
// misspelt setting is reported rather than ignored.
func DecodeSettings(settings json.RawMessage, dst any) error {
	if len(settings) == 0 {
		settings = json.RawMessage(`{}`)
	}
	dec := json.NewDecoder(bytes.NewReader(settings))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return &SettingsError{Setting: te.Field, Problem: fmt.Sprintf("must be a %s", te.Type)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// The name is Go-quoted; trimming the quotes instead mangled
			// names that end in an escaped quote or backslash.
			quoted := strings.TrimPrefix(err.Error(), "json: unknown field ")
			name, uerr := strconv.Unquote(quoted)
			if uerr != nil {
				name = quoted
			}
			return &SettingsError{Setting: name, Problem: "is not a setting of this connector type"}
		}
		return &SettingsError{Setting: "", Problem: err.Error()}
	}
	// Decode reads one value; without this, anything after the object
	// would be ignored.
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		return &SettingsError{Setting: "", Problem: "must be one JSON object, with nothing after it"}
	}
	return nil
}

// Require reports a missing required setting.
func Require(setting, value string) error {
	if strings.TrimSpace(value) == "" {
		return &SettingsError{Setting: setting, Problem: "is required"}
	}
	return nil
}

// BaseURL parses an endpoint setting (fallback when empty): an absolute
// http(s) URL.
func BaseURL(setting, value, fallback string) (*url.URL, error) {
	if value == "" {
		value = fallback
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, &SettingsError{Setting: setting, Problem: QuoteSetting(value) + " is not an absolute http(s) URL"}
	}
	return u, nil
}

// Payload decodes an event's data into dst; a payload that does not fit is
// permanent (retrying cannot change it).
func Payload(e Event, dst any) error {
	if err := json.Unmarshal(e.Data, dst); err != nil {
		return Permanent(fmt.Errorf("%s %s: payload: %w", e.Type, e.ID, err))
	}
	return nil
}

// Missing is a permanent error for a payload without a field the
// marketplace needs.
func Missing(e Event, field string) error {
	return Permanent(fmt.Errorf("%s %s: payload has no %s", e.Type, e.ID, field))
}

// maxEcho is how much of a setting's value an error repeats: the manager
// shows settings errors in a status condition, whose message the API server
// limits to 32768 bytes.
const maxEcho = 100

// QuoteSetting quotes a setting's value for a SettingsError, cut to a
// bounded length.
func QuoteSetting(value string) string { return strconv.Quote(Clip(value, maxEcho)) }

// Clip cuts s to at most n bytes, on a character boundary, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
