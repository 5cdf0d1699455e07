package testbed

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ActiveMQ is Apache ActiveMQ from Debian's package (hack/install-system-deps.sh),
// run in the foreground from a temporary directory with its own
// configuration: one STOMP transport on a free loopback port, a login
// required (ActiveMQLogin / ActiveMQPasscode), and KahaDB in that
// directory, so messages outlive a Stop and Start.
type ActiveMQ struct {
	dir  string
	port int
	proc *process
}

// The broker's one user.
const (
	ActiveMQLogin    = "dispatcher"
	ActiveMQPasscode = "testbed-passcode-4821"
)

const activemqJar = "/usr/share/activemq/bin/activemq.jar"

// StartActiveMQ starts a broker and waits for its STOMP port.
func StartActiveMQ(ctx context.Context) (*ActiveMQ, error) {
	if _, err := os.Stat(activemqJar); err != nil {
		return nil, fmt.Errorf("ActiveMQ not found: run hack/install-system-deps.sh (apt-get install activemq): %w", err)
	}
	dir, err := os.MkdirTemp("", "testbed-activemq-")
	if err != nil {
		return nil, err
	}
	a := &ActiveMQ{dir: dir}
	if err := onFreePort(func(port int) error { a.port = port; return a.Start(ctx) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return a, nil
}

// Start runs the broker (again) on the same port and data directory.
func (a *ActiveMQ) Start(ctx context.Context) error {
	data := filepath.Join(a.dir, "data")
	conf := fmt.Sprintf(`<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="testbed"
          dataDirectory="%[1]s" schedulerSupport="false" advisorySupport="false">
    <persistenceAdapter><kahaDB directory="%[1]s/kahadb"/></persistenceAdapter>
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="false">
        <users><authenticationUser username="%[2]s" password="%[3]s" groups="users"/></users>
      </simpleAuthenticationPlugin>
    </plugins>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://%[4]s"/>
    </transportConnectors>
  </broker>
</beans>
`, data, ActiveMQLogin, ActiveMQPasscode, hostPort(a.port))
	confPath := filepath.Join(a.dir, "activemq.xml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("java", "-Xms64m", "-Xmx256m", "-Dactivemq.home=/usr/share/activemq", "-Dactivemq.base="+a.dir,
		"-Dactivemq.conf="+a.dir, "-Dactivemq.data="+data, "-jar", activemqJar, "start", "xbean:file:"+confPath)
	var err error
	a.proc, err = startProcess(ctx, "activemq", cmd, filepath.Join(a.dir, "activemq.log"), 2*time.Minute, listening(hostPort(a.port)))
	return err
}

// Addr is the STOMP transport's host:port.
func (a *ActiveMQ) Addr() string { return hostPort(a.port) }

// Stop ends the broker; persistent messages stay in its data directory.
func (a *ActiveMQ) Stop() {
	a.proc.stop(syscall.SIGTERM)
	a.proc = nil
}

// Close stops the broker and removes its files.
func (a *ActiveMQ) Close() {
	a.Stop()
	os.RemoveAll(a.dir)
}

// STOMPMessage is a MESSAGE frame a consumer received.
type STOMPMessage struct {
	Headers map[string]string
	Body    []byte
}

// STOMPConsumer reads one destination. It is written from the STOMP 1.2
// specification on a bare connection, apart from the dispatcher's client,
// so what it sees does not depend on that client.
type STOMPConsumer struct {
	conn     net.Conn
	Messages chan STOMPMessage
}

// Consume subscribes to destination (acknowledged automatically) with the
// broker's login; the consumer is closed when the test ends.
func (a *ActiveMQ) Consume(t testing.TB, destination string) *STOMPConsumer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", a.Addr(), 10*time.Second)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	fmt.Fprintf(conn, "CONNECT\naccept-version:1.2\nhost:localhost\nlogin:%s\npasscode:%s\n\n\x00", ActiveMQLogin, ActiveMQPasscode)
	r := bufio.NewReader(conn)
	if f, err := readRawFrame(r); err != nil || f.command != "CONNECTED" {
		t.Fatalf("consumer: CONNECT answered %q: %v", f.command, err)
	}
	fmt.Fprintf(conn, "SUBSCRIBE\nid:0\ndestination:%s\nack:auto\nreceipt:sub\n\n\x00", destination)
	if f, err := readRawFrame(r); err != nil || f.command != "RECEIPT" {
		t.Fatalf("consumer: SUBSCRIBE answered %q: %v", f.command, err)
	}
	c := &STOMPConsumer{conn: conn, Messages: make(chan STOMPMessage, 10000)}
	go func() {
		defer close(c.Messages)
		for {
			f, err := readRawFrame(r)
			if err != nil {
				return
			}
			if f.command == "MESSAGE" {
				c.Messages <- STOMPMessage{Headers: f.headers, Body: f.body}
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// Next waits for the next message, failing the test after 30 s.
func (c *STOMPConsumer) Next(t testing.TB) STOMPMessage {
	t.Helper()
	select {
	case m, ok := <-c.Messages:
		if !ok {
			t.Fatal("the consumer's connection closed")
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
	}
	return STOMPMessage{}
}

type rawFrame struct {
	command string
	headers map[string]string
	body    []byte
}

// readRawFrame reads one frame: command, headers (first of a repeated
// name wins, values unescaped), blank line, body to content-length or NUL.
func readRawFrame(r *bufio.Reader) (rawFrame, error) {
	f := rawFrame{headers: map[string]string{}}
	for f.command == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		f.command = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	}
	unescape := strings.NewReplacer(`\\`, `\`, `\c`, ":", `\n`, "\n", `\r`, "\r")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if _, ok := f.headers[unescape.Replace(name)]; !ok {
			f.headers[unescape.Replace(name)] = unescape.Replace(value)
		}
	}
	if n, err := strconv.Atoi(f.headers["content-length"]); err == nil {
		f.body = make([]byte, n+1)
		_, err := io.ReadFull(r, f.body)
		f.body = f.body[:n]
		return f, err
	}
	body, err := r.ReadBytes(0)
	if len(body) > 0 {
		body = body[:len(body)-1]
	}
	f.body = body
	return f, err
}
