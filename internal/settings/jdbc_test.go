package settings

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestJDBCURLsBecomeURLsPgxReads(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://db:5432/app":                         "postgres://db:5432/app",
		"jdbc:postgresql://db.internal:5432/integration": "postgresql://db.internal:5432/integration",
		"jdbc:postgresql://db:5432/app?ssl=true&prepareThreshold=0&tcpKeepAlive=true&ApplicationName=io&currentSchema=integration": "postgresql://db:5432/app?application_name=io&search_path=integration&sslmode=verify-full",
		"jdbc:postgresql://db/app?sslmode=require&ssl=true&connectTimeout=5":                                                       "postgresql://db/app?connect_timeout=5&sslmode=require",
		"jdbc:postgresql://a:5432,b:5433/app?targetServerType=primary":                                                             "postgresql://a:5432,b:5433/app?target_session_attrs=primary",
	} {
		got, err := fromJDBC(raw)
		if err != nil || got != want {
			t.Errorf("fromJDBC(%q) = %q, %v; want %q", raw, got, err, want)
			continue
		}
		if _, err := pgconn.ParseConfig(got); err != nil {
			t.Errorf("pgx refuses %q: %v", got, err)
		}
	}
}

func TestABadJDBCURLIsRefusedWithoutQuotingIt(t *testing.T) {
	for _, raw := range []string{"jdbc:mysql://db/app?password=hunter2", "jdbc:postgresql:app?password=hunter2", "jdbc:postgresql://%zz/app?password=hunter2"} {
		_, err := fromJDBC(raw)
		if err == nil {
			t.Errorf("%q accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes the URL: %v", err)
		}
	}
}
