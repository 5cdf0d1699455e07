// Package sqs delivers messages to Amazon SQS queues with the AWS SDK for
// Go v2. Sends to one queue that are ready together go in one
// SendMessageBatch (up to ten entries); each entry's failure is that
// delivery's alone. Each message carries the event id, type, delivery id
// and signature as message attributes; on a FIFO queue the delivery id is
// the MessageDeduplicationId.
//
// The SDK's service/sqs is pinned at v1.26.0, the last to speak SQS's
// query protocol: the SQS-compatible server the tests run (goaws) does not
// speak the JSON protocol later versions use. AWS answers both.
package sqs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/egress"
)

// Queue is where to send, with the credentials to send with.
type Queue struct {
	Region   string
	QueueURL string
	// MessageGroupID is a FIFO queue's group template: {storeId} and
	// {eventType} are replaced; empty means {storeId}.
	MessageGroupID  string
	AccessKeyID     string
	SecretAccessKey string
}

// maxBatch is SQS's limit of entries per SendMessageBatch; maxBatchBytes
// its limit on the entries' total size (bodies and attributes).
const (
	maxBatch      = 10
	maxBatchBytes = 256 << 10
)

// Sender sends to any number of queues; safe for concurrent use.
type Sender struct {
	http   *http.Client
	linger time.Duration
	// apiOptions are added to every client (tests count calls with them).
	apiOptions []func(*middleware.Stack) error

	mu       sync.Mutex
	batchers map[string]*batcher
}

// New returns a Sender calling SQS through httpClient (the dispatcher's,
// which refuses addresses that are not globally reachable unless allowed).
// A send waits up to linger for others to the same queue to share its
// batch.
func New(httpClient *http.Client, linger time.Duration, apiOptions ...func(*middleware.Stack) error) *Sender {
	return &Sender{http: httpClient, linger: linger, apiOptions: apiOptions, batchers: map[string]*batcher{}}
}

// Send delivers m to q and returns when SQS has taken it or refused it.
// An error wrapping destinations.ErrUnreachable is our outage (SQS could
// not be reached); one wrapping destinations.ErrCredentialsRejected means
// the access key was refused.
func (s *Sender) Send(ctx context.Context, q Queue, m destinations.Message) error {
	b, err := s.batcher(q)
	if err != nil {
		return err
	}
	entry := entryFor(q, m)
	r := &request{entry: entry, size: entrySize(entry), done: make(chan error, 1)}
	b.add(r)
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The batch may still be taken: at least once, deduplicated by the
		// consumer on the delivery id.
		return fmt.Errorf("%w: no answer from SQS in time", destinations.ErrUnreachable)
	}
}

// batcher is one queue's (with one access key's) pending sends.
type batcher struct {
	client *sqs.Client
	url    string
	linger time.Duration

	mu      sync.Mutex
	pending []*request
	bytes   int
	timer   *time.Timer
}

type request struct {
	entry types.SendMessageBatchRequestEntry
	size  int
	done  chan error
}

func (s *Sender) batcher(q Queue) (*batcher, error) {
	u, err := url.Parse(q.QueueURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("the queue URL is not an absolute URL")
	}
	sum := sha256.Sum256([]byte(q.Region + "\x00" + q.QueueURL + "\x00" + q.AccessKeyID + "\x00" + q.SecretAccessKey))
	key := hex.EncodeToString(sum[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.batchers[key]; ok {
		return b, nil
	}
	creds := aws.Credentials{AccessKeyID: q.AccessKeyID, SecretAccessKey: q.SecretAccessKey, Source: "vault"}
	client := sqs.New(sqs.Options{
		Region:       q.Region,
		BaseEndpoint: aws.String(u.Scheme + "://" + u.Host),
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
		HTTPClient:   s.http,
		// The dispatcher's retry schedule is the only one.
		Retryer:    aws.NopRetryer{},
		APIOptions: s.apiOptions,
	})
	b := &batcher{client: client, url: q.QueueURL, linger: s.linger}
	s.batchers[key] = b
	return b, nil
}

// add queues r; the batch goes when it is full or linger has passed.
func (b *batcher) add(r *request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) > 0 && b.bytes+r.size > maxBatchBytes {
		b.flushLocked()
	}
	b.pending = append(b.pending, r)
	b.bytes += r.size
	switch {
	case len(b.pending) >= maxBatch:
		b.flushLocked()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(b.linger, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if len(b.pending) > 0 && b.pending[0] == r {
				b.flushLocked()
			}
		})
	}
}

func (b *batcher) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	batch := b.pending
	b.pending, b.bytes = nil, 0
	go b.send(batch)
}

// sendTimeout bounds one call to SQS; each send also has its own deadline.
const sendTimeout = 30 * time.Second

func (b *batcher) send(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	if len(batch) == 1 {
		e := batch[0].entry
		_, err := b.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &b.url, MessageBody: e.MessageBody,
			MessageAttributes: e.MessageAttributes, MessageGroupId: e.MessageGroupId, MessageDeduplicationId: e.MessageDeduplicationId})
		batch[0].done <- classify(err)
		return
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, r := range batch {
		entries[i] = r.entry
		entries[i].Id = aws.String("m" + strconv.Itoa(i))
	}
	out, err := b.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &b.url, Entries: entries})
	if err != nil {
		err = classify(err)
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	answered := make([]bool, len(batch))
	for _, f := range out.Failed {
		i, ok := entryIndex(f.Id, len(batch))
		if !ok || answered[i] {
			continue
		}
		answered[i] = true
		batch[i].done <- fmt.Errorf("SQS refused the message: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
	}
	for _, s := range out.Successful {
		if i, ok := entryIndex(s.Id, len(batch)); ok && !answered[i] {
			answered[i] = true
			batch[i].done <- nil
		}
	}
	for i, r := range batch {
		if !answered[i] {
			r.done <- errors.New("SQS's answer did not mention the message")
		}
	}
}

func entryIndex(id *string, n int) (int, bool) {
	i, err := strconv.Atoi(strings.TrimPrefix(aws.ToString(id), "m"))
	return i, err == nil && i >= 0 && i < n
}

// credentialCodes are SQS's answers to an access key it does not accept.
var credentialCodes = map[string]bool{
	"InvalidClientTokenId": true, "AccessDenied": true, "AccessDeniedException": true, "SignatureDoesNotMatch": true,
	"UnrecognizedClientException": true, "InvalidSecurity": true, "ExpiredToken": true, "MissingAuthenticationToken": true,
}

// classify tells our outage (SQS unreachable) and refused credentials
// from other failures. Messages never hold the credentials.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if credentialCodes[apiErr.ErrorCode()] {
			return fmt.Errorf("%w: %s: %s", destinations.ErrCredentialsRejected, apiErr.ErrorCode(), apiErr.ErrorMessage())
		}
		return fmt.Errorf("SQS refused the message: %s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() != 0 {
		return fmt.Errorf("SQS answered %d", respErr.HTTPStatusCode())
	}
	if errors.Is(err, egress.ErrRefused) {
		return egress.ErrRefused
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		// A name that does not exist is the queue URL's fault, not an outage.
		return fmt.Errorf("the queue URL's host does not resolve: %s", dnsErr.Name)
	}
	if unverified := destinations.TLSUnverified(err); unverified != nil {
		return unverified
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", destinations.ErrUnreachable, rootCause(err))
	}
	return fmt.Errorf("sending to SQS: %w", err)
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// entryFor makes m an entry of q's batch (its Id is set when batched).
func entryFor(q Queue, m destinations.Message) types.SendMessageBatchRequestEntry {
	str := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	e := types.SendMessageBatchRequestEntry{
		MessageBody: aws.String(string(m.Body)),
		MessageAttributes: map[string]types.MessageAttributeValue{
			destinations.AttrEvent: str(m.EventType), destinations.AttrEventID: str(m.EventID),
			destinations.AttrDelivery: str(m.DeliveryID), destinations.AttrSignature: str(m.Signature),
		},
	}
	if IsFIFO(q.QueueURL) {
		group := q.MessageGroupID
		if group == "" {
			group = "{storeId}"
		}
		group = strings.NewReplacer("{storeId}", m.StoreID, "{eventType}", m.EventType).Replace(group)
		e.MessageGroupId = aws.String(group)
		e.MessageDeduplicationId = aws.String(m.DeliveryID)
	}
	return e
}

// IsFIFO reports whether the queue URL names a FIFO queue.
func IsFIFO(queueURL string) bool { return strings.HasSuffix(queueURL, ".fifo") }

func entrySize(e types.SendMessageBatchRequestEntry) int {
	n := len(aws.ToString(e.MessageBody))
	for k, v := range e.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue))
	}
	return n
}
