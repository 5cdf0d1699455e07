package testbed

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SQS is goaws, an SQS-compatible server written in Go and built from the
// module proxy (hack/build-tool.sh goaws), on a free port. It speaks SQS's
// query protocol and checks no credentials. Its queues live in memory and
// are those named at start, created again by Start after a Stop.
type SQS struct {
	dir    string
	bin    string
	port   int
	queues []string
	proc   *process
}

// Account is the account id in the test server's queue URLs.
const sqsAccount = "100010001000"

// StartSQS starts goaws with the given queues (a name ending in .fifo is a
// FIFO queue).
func StartSQS(ctx context.Context, queues ...string) (*SQS, error) {
	bin, err := toolPath("goaws", "GOAWS_BIN")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testbed-sqs-")
	if err != nil {
		return nil, err
	}
	s := &SQS{dir: dir, bin: bin, queues: queues}
	if err := onFreePort(func(port int) error { s.port = port; return s.Start(ctx) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Start runs the server (again) on the same port with the same queues,
// empty.
func (s *SQS) Start(ctx context.Context) error {
	var conf strings.Builder
	fmt.Fprintf(&conf, "Local:\n  Host: 127.0.0.1\n  Port: %d\n  Region: us-east-1\n  AccountId: %q\n  LogToFile: false\n  Queues:\n",
		s.port, sqsAccount)
	for _, q := range s.queues {
		fmt.Fprintf(&conf, "    - Name: %s\n", q)
	}
	confPath := filepath.Join(s.dir, "goaws.yaml")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-config", confPath, "Local")
	var err error
	s.proc, err = startProcess(ctx, "goaws", cmd, filepath.Join(s.dir, "goaws.log"), 30*time.Second, listening(hostPort(s.port)))
	return err
}

// Endpoint is the server's base URL.
func (s *SQS) Endpoint() string { return "http://" + hostPort(s.port) }

// QueueURL is the URL of one of the queues it was started with.
func (s *SQS) QueueURL(name string) string {
	return s.Endpoint() + "/" + sqsAccount + "/" + name
}

// Port is the port it listens on.
func (s *SQS) Port() string { return strconv.Itoa(s.port) }

// Stop ends the server; its queues' messages are lost.
func (s *SQS) Stop() {
	s.proc.stop(syscall.SIGTERM)
	s.proc = nil
}

// Close stops the server and removes its files.
func (s *SQS) Close() {
	s.Stop()
	os.RemoveAll(s.dir)
}

// SQSMessage is a message as a consumer receives it.
type SQSMessage struct {
	Body          string
	Attributes    map[string]string // message attributes (String values)
	ReceiptHandle string
}

// Receive takes up to ten messages from the queue and deletes them, as a
// consumer would. It speaks the query protocol with plain HTTP, so what it
// sees does not depend on the SDK the dispatcher sends with.
func (s *SQS) Receive(ctx context.Context, queueURL string) ([]SQSMessage, error) {
	form := url.Values{"Action": {"ReceiveMessage"}, "Version": {"2012-11-05"}, "QueueUrl": {queueURL},
		"MaxNumberOfMessages": {"10"}, "MessageAttributeName.1": {"All"}, "AttributeName.1": {"All"}}
	var out struct {
		Messages []struct {
			Body          string `xml:"Body"`
			ReceiptHandle string `xml:"ReceiptHandle"`
			Attributes    []struct {
				Name  string `xml:"Name"`
				Value struct {
					StringValue string `xml:"StringValue"`
				} `xml:"Value"`
			} `xml:"MessageAttribute"`
		} `xml:"ReceiveMessageResult>Message"`
	}
	if err := s.call(ctx, form, &out); err != nil {
		return nil, err
	}
	msgs := make([]SQSMessage, 0, len(out.Messages))
	for _, m := range out.Messages {
		msg := SQSMessage{Body: m.Body, ReceiptHandle: m.ReceiptHandle, Attributes: map[string]string{}}
		for _, a := range m.Attributes {
			msg.Attributes[a.Name] = a.Value.StringValue
		}
		msgs = append(msgs, msg)
		del := url.Values{"Action": {"DeleteMessage"}, "Version": {"2012-11-05"}, "QueueUrl": {queueURL}, "ReceiptHandle": {m.ReceiptHandle}}
		if err := s.call(ctx, del, nil); err != nil {
			return msgs, err
		}
	}
	return msgs, nil
}

func (s *SQS) call(ctx context.Context, form url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint()+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", form.Get("Action"), resp.StatusCode, body)
	}
	if into == nil {
		return nil
	}
	return xml.Unmarshal(body, into)
}

// SQSGate stands in front of the server as AWS's front door would: it
// counts the calls by action and refuses, as AWS does, any access key
// other than the one it was given (goaws checks none).
type SQSGate struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

// Gate starts a gate admitting accessKeyID; it stops when the test ends.
func (s *SQS) Gate(t testing.TB, accessKeyID string) *SQSGate {
	target, _ := url.Parse(s.Endpoint())
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &SQSGate{calls: map[string]int{}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		g.mu.Lock()
		g.calls[form.Get("Action")]++
		g.mu.Unlock()
		// SigV4: Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/...
		_, cred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
		if keyID, _, _ := strings.Cut(cred, "/"); keyID != accessKeyID {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>`+
				`<Message>The security token included in the request is invalid.</Message></Error><RequestId>0</RequestId></ErrorResponse>`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// QueueURL is the URL of the server's queue name, reached through the gate.
func (g *SQSGate) QueueURL(name string) string { return g.URL + "/" + sqsAccount + "/" + name }

// Calls counts the calls of one action (SendMessage, SendMessageBatch) so far.
func (g *SQSGate) Calls(action string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[action]
}
