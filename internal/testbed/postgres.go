package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster in a temp dir. Stop and Start
// restart it on the same port and data, for outage tests.
type Postgres struct {
	dir    string
	binDir string
	port   int
	cred   *syscall.Credential
	proc   *process
	// durable: fsync, synchronous commit and full-page writes on, as in
	// production; otherwise off, for speed.
	durable bool
}

// StartPostgres initialises a cluster in a new temp dir and starts it on a
// free loopback port, without fsync (tests need speed, not crash safety).
// As root it runs the server as the "postgres" user, since initdb refuses
// root.
func StartPostgres(ctx context.Context) (*Postgres, error) { return startPostgres(ctx, false) }

// StartDurablePostgres is StartPostgres with fsync=on,
// synchronous_commit=on and full_page_writes=on: what a benchmark that
// calls its figure durable must run against.
func StartDurablePostgres(ctx context.Context) (*Postgres, error) { return startPostgres(ctx, true) }

func startPostgres(ctx context.Context, durable bool) (*Postgres, error) {
	binDir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testbed-pg-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{dir: dir, binDir: binDir, durable: durable}
	if os.Geteuid() == 0 {
		if pg.cred, err = postgresCredential(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	initdb := pg.command(ctx, "initdb", "-D", pg.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if pg.port, err = freePort(); err != nil {
			break
		}
		if err = pg.Start(ctx); err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return pg, nil
}

func (pg *Postgres) dataDir() string { return filepath.Join(pg.dir, "data") }
func (pg *Postgres) logFile() string { return filepath.Join(pg.dir, "postgres.log") }

func (pg *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(pg.binDir, name), args...)
	cmd.Dir = pg.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	return cmd
}

// Start runs the server (again) and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	if _, err := os.Stat(pg.logFile()); os.IsNotExist(err) && pg.cred != nil {
		if f, err := os.Create(pg.logFile()); err == nil {
			f.Close()
			_ = os.Chown(pg.logFile(), int(pg.cred.Uid), int(pg.cred.Gid))
		}
	}
	// Not bound to ctx: the server outlives the call that started it.
	durability := []string{"-c", "fsync=off", "-c", "full_page_writes=off"}
	if pg.durable {
		durability = []string{"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"}
	}
	args := append([]string{"-D", pg.dataDir(), "-p", strconv.Itoa(pg.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + pg.dir, "-c", "max_connections=300"}, durability...)
	cmd := pg.command(context.Background(), "postgres", args...)
	var err error
	pg.proc, err = startProcess(ctx, "postgres", cmd, pg.logFile(), 30*time.Second, func() bool {
		conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err != nil {
			return false
		}
		conn.Close(ctx)
		return true
	})
	return err
}

// Stop shuts the server down (fast mode), keeping its data and port.
func (pg *Postgres) Stop() {
	pg.proc.stop(syscall.SIGINT)
	pg.proc = nil
}

// Close stops the server and removes its files.
func (pg *Postgres) Close() {
	pg.Stop()
	_ = os.RemoveAll(pg.dir)
}

// Port is the server's TCP port on 127.0.0.1.
func (pg *Postgres) Port() int { return pg.port }

// DSN is a connection URL for database on this server.
func (pg *Postgres) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", hostPort(pg.port), database)
}

// CreateDatabase makes a new empty database with a random name and returns
// its DSN, so tests sharing a server do not see each other's rows.
func (pg *Postgres) CreateDatabase(ctx context.Context) (string, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "test_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return pg.DSN(name), nil
}

// postgresBinDir finds the server binaries: $PG_BIN_DIR, else the newest
// of Debian's /usr/lib/postgresql/<version>/bin, preferring 15.
func postgresBinDir() (string, error) {
	if dir := os.Getenv("PG_BIN_DIR"); dir != "" {
		return dir, nil
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Sort(sort.Reverse(sort.StringSlice(candidates)))
	for _, c := range candidates {
		if filepath.Base(filepath.Dir(filepath.Dir(c))) == "15" {
			return filepath.Dir(c), nil
		}
	}
	if len(candidates) > 0 {
		return filepath.Dir(candidates[0]), nil
	}
	return "", errors.New("PostgreSQL server not found: run hack/install-system-deps.sh (apt-get install postgresql) or set PG_BIN_DIR")
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the 'postgres' user that Debian's postgresql package creates: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
