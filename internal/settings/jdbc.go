package settings

import (
	"errors"
	"net/url"
	"strings"
)

// jdbcParams maps the PostgreSQL JDBC driver's connection properties that
// have a libpq equivalent to it. pgx sends any query parameter it does not
// know to the server as a run-time setting, which refuses the JDBC-only
// ones (prepareThreshold, tcpKeepAlive...), so those are dropped.
var jdbcParams = map[string]string{
	"user":             "user",
	"password":         "password",
	"sslmode":          "sslmode",
	"sslrootcert":      "sslrootcert",
	"sslcert":          "sslcert",
	"sslkey":           "sslkey",
	"connecttimeout":   "connect_timeout",
	"applicationname":  "application_name",
	"currentschema":    "search_path",
	"options":          "options",
	"targetservertype": "target_session_attrs",
}

// fromJDBC turns a PostgreSQL JDBC URL (jdbc:postgresql://host:port/db?...),
// as the platform's Java services keep it, into the URL pgx reads. Other
// URLs are returned unchanged. Errors never quote the URL: it may carry a
// password.
func fromJDBC(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, "jdbc:")
	if !ok {
		return raw, nil
	}
	if !strings.HasPrefix(rest, "postgresql://") {
		return "", errors.New("db.url is a JDBC URL but not jdbc:postgresql://host[:port]/database")
	}
	u, err := url.Parse(rest)
	if err != nil || u.Host == "" {
		return "", errors.New("db.url is a JDBC URL whose host cannot be read")
	}
	given, q := u.Query(), url.Values{}
	for name, values := range given {
		if strings.EqualFold(name, "ssl") {
			// ssl=true in JDBC means encrypt and check the certificate.
			if len(values) > 0 && strings.EqualFold(values[0], "true") && given.Get("sslmode") == "" {
				q.Set("sslmode", "verify-full")
			}
			continue
		}
		key, known := jdbcParams[strings.ToLower(name)]
		if !known {
			continue
		}
		if key == "target_session_attrs" {
			values = jdbcTargetServerType(values)
		}
		for _, v := range values {
			q.Add(key, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// jdbcTargetServerType maps targetServerType to target_session_attrs.
func jdbcTargetServerType(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		switch strings.ToLower(v) {
		case "primary", "master":
			out = append(out, "primary")
		case "secondary", "slave":
			out = append(out, "standby")
		case "prefersecondary", "preferslave":
			out = append(out, "prefer-standby")
		default:
			out = append(out, "any")
		}
	}
	return out
}
