// Command pause is the sandbox ("pause") container of the e2e-cluster's
// pods: it holds the pod's namespaces and waits to be stopped. The usual
// registry.k8s.io/pause image cannot be pulled here (no registry access), so
// the test builds this one into a local image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		// As PID 1 of a pod sharing its process namespace, reap orphans.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
