package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Nginx is a real nginx (Debian's package) run in the foreground with a
// test's configuration, for gateway-in-front tests.
type Nginx struct {
	dir  string
	addr string
	proc *process
}

// StartNginx runs nginx with the http{} block body that server returns for
// the listen address it is given (e.g. "127.0.0.1:41234").
func StartNginx(ctx context.Context, server func(listen string) string) (*Nginx, error) {
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("nginx not found: run hack/install-system-deps.sh (apt-get install nginx-light): %w", err)
	}
	dir, err := os.MkdirTemp("", "testbed-nginx-")
	if err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755) // workers run as nobody under root
	n := &Nginx{dir: dir}
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			err = perr
			break
		}
		n.addr = hostPort(port)
		conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server(n.addr))
		confPath := filepath.Join(dir, "nginx.conf")
		if err = os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			break
		}
		cmd := exec.Command(bin, "-p", dir, "-c", confPath)
		n.proc, err = startProcess(ctx, "nginx", cmd, filepath.Join(dir, "nginx.out"), 15*time.Second, listening(n.addr))
		if err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, tailFile(filepath.Join(dir, "error.log")))
	}
	return n, nil
}

// URL is the server's base URL.
func (n *Nginx) URL() string { return "http://" + n.addr }

// Close stops nginx (graceful quit) and removes its files.
func (n *Nginx) Close() {
	n.proc.stop(syscall.SIGQUIT)
	_ = os.RemoveAll(n.dir)
}
