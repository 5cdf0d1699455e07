// Package stomp delivers messages to a STOMP 1.2 broker (ActiveMQ,
// RabbitMQ's STOMP plugin). Each message is one SEND frame asking for a
// receipt, and counts as sent only once the broker's RECEIPT for it has
// come back. A few connections per broker, login and TLS setting carry
// every send to that broker, pipelined: a broker handles one connection's
// frames in order, and a persistent message is stored before its receipt,
// so one connection would make sends wait on each other's disk writes.
//
// No STOMP client is served by the module proxy this project builds from,
// so the few frames needed (CONNECT, SEND, RECEIPT, ERROR, DISCONNECT) are
// written here.
package stomp

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/egress"
)

// Broker is where to send, with the login to send with.
type Broker struct {
	Address     string
	TLS         bool
	Login       string
	Passcode    string
	Destination string
	// Headers are added to every SEND.
	Headers map[string]string
}

// Sender sends to any number of brokers; safe for concurrent use.
type Sender struct {
	dialer *net.Dialer
	// roots verify brokers' certificates (nil: the system's).
	roots *x509.CertPool
	next  atomic.Uint64
	mu    sync.Mutex
	conns map[string]*conn // by connKey and slot
}

// poolSize is how many connections a broker gets at most.
const poolSize = 4

// New returns a Sender dialling with dialer (the dispatcher's, which
// refuses addresses that are not globally reachable unless allowed) and
// verifying TLS brokers' certificates against roots (nil: the system's
// CAs). roots are the Sender's for its life, the same for every broker,
// so the connections are keyed without them.
func New(dialer *net.Dialer, roots *x509.CertPool) *Sender {
	return &Sender{dialer: dialer, roots: roots, conns: map[string]*conn{}}
}

// Send delivers m to b and returns once the broker has acknowledged it
// with a receipt. An error wrapping destinations.ErrUnreachable is our
// outage (no connection, no TLS handshake, or it broke before the
// receipt), and wraps destinations.ErrTLSVerification too if the broker's
// certificate did not verify; one wrapping
// destinations.ErrCredentialsRejected means the login was refused.
func (s *Sender) Send(ctx context.Context, b Broker, m destinations.Message) error {
	c, key, err := s.conn(ctx, b)
	if err != nil {
		return err
	}
	err = c.send(ctx, b, m)
	if errors.Is(err, destinations.ErrUnreachable) {
		s.drop(key, c)
	}
	return err
}

// Close ends every connection.
func (s *Sender) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.conns {
		c.close(errors.New("sender closed"))
		delete(s.conns, k)
	}
}

func connKey(b Broker, slot uint64) string {
	sum := sha256.Sum256([]byte(b.Address + "\x00" + strconv.FormatBool(b.TLS) + "\x00" + b.Login + "\x00" + b.Passcode))
	return hex.EncodeToString(sum[:]) + "/" + strconv.FormatUint(slot, 10)
}

// conn returns one of the broker's connections, dialling it if needed;
// sends take turns over the slots.
func (s *Sender) conn(ctx context.Context, b Broker) (*conn, string, error) {
	key := connKey(b, s.next.Add(1)%poolSize)
	s.mu.Lock()
	c, ok := s.conns[key]
	if ok && !c.broken() {
		s.mu.Unlock()
		return c, key, nil
	}
	s.mu.Unlock()
	c, err := s.dial(ctx, b)
	if err != nil {
		return nil, key, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.conns[key]; ok && !old.broken() {
		c.close(errors.New("another connection won"))
		return old, key, nil
	}
	s.conns[key] = c
	return c, key, nil
}

func (s *Sender) drop(key string, c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[key] == c {
		delete(s.conns, key)
	}
}

// connectTimeout bounds the dial and the CONNECT handshake.
const connectTimeout = 10 * time.Second

func (s *Sender) dial(ctx context.Context, b Broker) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	raw, err := s.dialer.DialContext(ctx, "tcp", b.Address)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil, fmt.Errorf("the broker's host does not resolve: %s", dnsErr.Name)
		}
		if errors.Is(err, egress.ErrRefused) {
			return nil, egress.ErrRefused
		}
		return nil, fmt.Errorf("%w: %v", destinations.ErrUnreachable, err)
	}
	nc := raw
	host, _, _ := net.SplitHostPort(b.Address)
	if b.TLS {
		tc := tls.Client(raw, &tls.Config{ServerName: host, RootCAs: s.roots, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			if unverified := destinations.TLSUnverified(err); unverified != nil {
				return nil, unverified
			}
			// Cut off, timed out, or not TLS there: the broker as reached is
			// not one that can take a message, whatever the message.
			return nil, fmt.Errorf("%w: TLS with the broker failed: %v", destinations.ErrUnreachable, err)
		}
		nc = tc
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	c := &conn{nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriter(nc), waiting: map[string]chan error{}}
	headers := [][2]string{{"accept-version", "1.2"}, {"host", host}, {"heart-beat", "0,0"}}
	if b.Login != "" {
		headers = append(headers, [2]string{"login", b.Login}, [2]string{"passcode", b.Passcode})
	}
	if err := writeFrame(c.w, "CONNECT", headers, nil); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %v", destinations.ErrUnreachable, err)
	}
	f, err := readFrame(c.r)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: no answer to CONNECT: %v", destinations.ErrUnreachable, err)
	}
	if f.command == "ERROR" {
		nc.Close()
		return nil, connectRefused(f, b.Login)
	}
	if f.command != "CONNECTED" {
		nc.Close()
		return nil, fmt.Errorf("the broker answered CONNECT with %s", f.command)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.readLoop()
	return c, nil
}

// connectRefused reads an ERROR answering CONNECT: brokers send one for a
// login they do not accept (and for little else at that point). Brokers
// name the login in it (ActiveMQ: "User name [x] or password is invalid"):
// it is masked to its last four characters.
func connectRefused(f frame, login string) error {
	msg := f.headers["message"]
	if login != "" {
		msg = strings.ReplaceAll(msg, login, destinations.Mask(login))
	}
	lower := strings.ToLower(msg + " " + string(f.body))
	for _, w := range []string{"password", "login", "user", "auth", "credential", "security", "access"} {
		if strings.Contains(lower, w) {
			return fmt.Errorf("%w: %s", destinations.ErrCredentialsRejected, oneLine(msg))
		}
	}
	return fmt.Errorf("the broker refused the connection: %s", oneLine(msg))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// conn is one broker connection; sends on it are pipelined, each waiting
// for its receipt.
type conn struct {
	nc net.Conn
	r  *bufio.Reader

	wmu sync.Mutex
	w   *bufio.Writer

	mu      sync.Mutex
	next    uint64
	waiting map[string]chan error
	err     error // set once broken
}

func (c *conn) broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

func (c *conn) send(ctx context.Context, b Broker, m destinations.Message) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return fmt.Errorf("%w: %v", destinations.ErrUnreachable, c.err)
	}
	c.next++
	receipt := strconv.FormatUint(c.next, 10)
	done := make(chan error, 1)
	c.waiting[receipt] = done
	c.mu.Unlock()

	headers := make([][2]string, 0, 8+len(b.Headers))
	// Extra headers first: STOMP takes the first of a repeated header,
	// and the CRD refuses names that would clash with ours anyway.
	extra := make([]string, 0, len(b.Headers))
	for k := range b.Headers {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	headers = append(headers, [2]string{"destination", b.Destination}, [2]string{"content-type", "application/json"},
		[2]string{"receipt", receipt}, [2]string{"persistent", "true"},
		[2]string{destinations.AttrEvent, m.EventType}, [2]string{destinations.AttrEventID, m.EventID},
		[2]string{destinations.AttrDelivery, m.DeliveryID}, [2]string{destinations.AttrSignature, m.Signature})
	for _, k := range extra {
		headers = append(headers, [2]string{k, b.Headers[k]})
	}
	c.wmu.Lock()
	if d, ok := ctx.Deadline(); ok {
		_ = c.nc.SetWriteDeadline(d)
	}
	err := writeFrame(c.w, "SEND", headers, m.Body)
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
		return fmt.Errorf("%w: %v", destinations.ErrUnreachable, err)
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiting, receipt)
		c.mu.Unlock()
		// Without its receipt the send may or may not have been taken:
		// retried as our outage, deduplicated by the consumer.
		return fmt.Errorf("%w: no receipt from the broker in time", destinations.ErrUnreachable)
	}
}

// readLoop hands each RECEIPT to its send; an ERROR ends the connection
// (and, with a receipt-id, fails that send for the reason given).
func (c *conn) readLoop() {
	for {
		f, err := readFrame(c.r)
		if err != nil {
			c.close(err)
			return
		}
		switch f.command {
		case "RECEIPT":
			c.answer(f.headers["receipt-id"], nil)
		case "ERROR":
			why := fmt.Errorf("the broker refused the message: %s", oneLine(f.headers["message"]))
			if id := f.headers["receipt-id"]; id != "" {
				c.answer(id, why)
			}
			c.close(why)
			return
		}
	}
}

func (c *conn) answer(receipt string, err error) {
	c.mu.Lock()
	done, ok := c.waiting[receipt]
	delete(c.waiting, receipt)
	c.mu.Unlock()
	if ok {
		done <- err
	}
}

// close fails every send still waiting as our outage: the connection
// broke, not the message.
func (c *conn) close(cause error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = cause
		if cause == nil || errors.Is(cause, io.EOF) {
			c.err = errors.New("the broker closed the connection")
		}
	}
	waiting := c.waiting
	c.waiting = map[string]chan error{}
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, done := range waiting {
		done <- fmt.Errorf("%w: the connection broke before the receipt: %v", destinations.ErrUnreachable, c.err)
	}
}

type frame struct {
	command string
	headers map[string]string
	body    []byte
}

var escaper = strings.NewReplacer("\\", "\\\\", "\r", "\\r", "\n", "\\n", ":", "\\c")
var unescaper = strings.NewReplacer("\\\\", "\\", "\\r", "\r", "\\n", "\n", "\\c", ":")

func writeFrame(w *bufio.Writer, command string, headers [][2]string, body []byte) error {
	w.WriteString(command)
	w.WriteByte('\n')
	for _, h := range headers {
		if command == "CONNECT" {
			// CONNECT headers are not escaped (STOMP 1.2).
			w.WriteString(h[0] + ":" + h[1] + "\n")
			continue
		}
		w.WriteString(escaper.Replace(h[0]) + ":" + escaper.Replace(h[1]) + "\n")
	}
	if body != nil {
		w.WriteString("content-length:" + strconv.Itoa(len(body)) + "\n")
	}
	w.WriteByte('\n')
	w.Write(body)
	w.WriteByte(0)
	return w.Flush()
}

// maxFrame bounds what is read of a broker's frame.
const maxFrame = 1 << 20

func readFrame(r *bufio.Reader) (frame, error) {
	var f frame
	// Heart-beats are bare EOLs between frames.
	for f.command == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		f.command = strings.TrimRight(line, "\r\n")
	}
	f.headers = map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		k, v = unescaper.Replace(k), unescaper.Replace(v)
		if _, seen := f.headers[k]; !seen {
			f.headers[k] = v
		}
	}
	if n, err := strconv.Atoi(f.headers["content-length"]); err == nil && n >= 0 && n <= maxFrame {
		f.body = make([]byte, n)
		if _, err := io.ReadFull(r, f.body); err != nil {
			return f, err
		}
		if _, err := r.ReadByte(); err != nil { // the NUL
			return f, err
		}
		return f, nil
	}
	body, err := r.ReadBytes(0)
	if err != nil {
		return f, err
	}
	if len(body) > maxFrame {
		body = body[:maxFrame]
	}
	f.body = body[:len(body)-1]
	return f, nil
}
