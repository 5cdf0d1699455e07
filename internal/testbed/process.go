package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a server the test bed started, with its log file.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// startProcess runs cmd with its output appended to logPath and polls ready
// until it reports true, the process exits, or timeout passes.
// listening is a readiness check: something accepts connections on addr.
func listening(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

func startProcess(ctx context.Context, name string, cmd *exec.Cmd, logPath string, timeout time.Duration, ready func() bool) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	// If the test process dies without cleaning up (a panic, kill -9), the
	// server dies with it instead of lingering.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); close(p.exited) }()

	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited at start-up:\n%s", name, tailFile(logPath))
		case <-ctx.Done():
			p.stop(syscall.SIGTERM)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(syscall.SIGTERM)
			return nil, fmt.Errorf("%s not ready after %v:\n%s", name, timeout, tailFile(logPath))
		}
	}
	return p, nil
}

// stop sends sig and waits; after 15 s it kills the process group.
func (p *process) stop(sig syscall.Signal) {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}
