// Command pgimage is the entry point of the osprey-postgres image: the
// PostgreSQL that the central nodes of the compose cluster (deploy/compose)
// share. deploy/image/build.sh builds that image FROM scratch out of the
// build host's Debian postgresql package (the server binaries, the
// libraries ldd names, the server's share files, zoneinfo), so it has no
// shell: this static program does what an entry point script does in other
// images.
//
// On the first start, when the data directory holds no cluster, it runs
// initdb (UTF8, locale C, SCRAM-SHA-256) into a directory beside it,
// creates the role and the database the central nodes use (in single-user
// mode, with exit_on_error), and only then renames the directory into
// place: a first start cut short is begun again at the next, never left
// half made. On every start it writes pg_hba.conf from its settings, then
// replaces itself with postgres (exec), which stops fast on SIGINT, the
// image's stop signal.
//
// Settings, from the environment:
//
//	PGDATA                    the data directory (default /var/lib/postgresql/data);
//	                          mount the volume on its parent
//	OSPREY_PG_PASSWORD        the role's password: 12 to 128 printable ASCII characters,
//	                          no space; needed on the first start only
//	OSPREY_PG_PASSWORD_FILE   a file whose first line is the password, instead
//	OSPREY_PG_USER            the role the central nodes log in as (default osprey)
//	OSPREY_PG_DB              its database (default osprey), which it owns
//	OSPREY_PG_ALLOW           the networks (CIDRs, comma-separated) whose hosts may
//	                          log in (required)
//	OSPREY_PG_LISTEN          the addresses to listen on, comma-separated (default:
//	                          every address of the container but loopback)
//	OSPREY_PG_SOCKET_DIR      the unix socket's directory (default /var/run/postgresql)
//
// The role logs in with SCRAM-SHA-256 only, to its own database only, from
// the allowed networks or over the unix socket. Its password is stored as
// a SCRAM verifier made here, so the password itself never reaches the
// server, its log or the server's environment. The superuser postgres has
// no password: it logs in over the unix socket only, as the operating
// system user postgres (peer), that is through docker exec. Arguments are
// passed to postgres after the image's own settings, so they win:
// `-c max_connections=400`.
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	cfg, err := configFromEnv(os.Getenv, hostAddrs)
	if err == nil {
		cfg.binDir, err = binDir()
	}
	if err == nil {
		err = run(cfg, os.Args[1:])
	}
	// run returns only when it could not exec postgres.
	fmt.Fprintf(os.Stderr, "pgimage: %v\n", err)
	os.Exit(1)
}

// config is the entry point's settings.
type config struct {
	binDir    string // of the server binaries: binDir()
	dataDir   string
	password  string // empty when not given: a cluster must exist already
	user, db  string
	allow     []netip.Prefix
	listen    []netip.Addr
	socketDir string
}

// nameRE is a role or database name that needs no quoting anywhere.
var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// configFromEnv reads the settings and reports every problem at once;
// addrs gives the host's own addresses, the default of OSPREY_PG_LISTEN.
func configFromEnv(getenv func(string) string, addrs func() ([]netip.Addr, error)) (*config, error) {
	var errs []error
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	c := &config{
		dataDir:   or("PGDATA", "/var/lib/postgresql/data"),
		user:      or("OSPREY_PG_USER", "osprey"),
		db:        or("OSPREY_PG_DB", "osprey"),
		socketDir: or("OSPREY_PG_SOCKET_DIR", "/var/run/postgresql"),
	}
	if !filepath.IsAbs(c.dataDir) {
		errs = append(errs, fmt.Errorf("PGDATA: %q: want an absolute path", c.dataDir))
	}
	if !filepath.IsAbs(c.socketDir) {
		errs = append(errs, fmt.Errorf("OSPREY_PG_SOCKET_DIR: %q: want an absolute path", c.socketDir))
	}
	for _, n := range []struct{ env, v string }{{"OSPREY_PG_USER", c.user}, {"OSPREY_PG_DB", c.db}} {
		switch {
		case !nameRE.MatchString(n.v):
			errs = append(errs, fmt.Errorf("%s: %q: want lower-case letters, digits and _, at most 63, not starting with a digit", n.env, n.v))
		case strings.HasPrefix(n.v, "pg_") || n.v == "postgres" || strings.HasPrefix(n.v, "template"):
			errs = append(errs, fmt.Errorf("%s: %q is reserved", n.env, n.v))
		}
	}

	pw, pwFile := getenv("OSPREY_PG_PASSWORD"), getenv("OSPREY_PG_PASSWORD_FILE")
	switch {
	case pw != "" && pwFile != "":
		errs = append(errs, errors.New("OSPREY_PG_PASSWORD, OSPREY_PG_PASSWORD_FILE: give one, not both"))
	case pwFile != "":
		b, err := os.ReadFile(pwFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("OSPREY_PG_PASSWORD_FILE: %w", err))
			break
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		pw = strings.TrimSuffix(string(line), "\r")
		if pw == "" {
			errs = append(errs, fmt.Errorf("OSPREY_PG_PASSWORD_FILE: %s: the first line is empty", pwFile))
		}
	}
	if pw != "" {
		if err := checkPassword(pw); err != nil {
			name := "OSPREY_PG_PASSWORD"
			if pwFile != "" {
				name = "OSPREY_PG_PASSWORD_FILE"
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		c.password = pw
	}

	allow := fields(getenv("OSPREY_PG_ALLOW"))
	if len(allow) == 0 {
		errs = append(errs, errors.New("OSPREY_PG_ALLOW: required: the networks (CIDRs, comma-separated) whose hosts may log in, e.g. 172.30.10.0/24"))
	}
	for i, s := range allow {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("OSPREY_PG_ALLOW[%d]: %q: want a CIDR such as 10.0.0.0/24", i, s))
		case p != p.Masked():
			errs = append(errs, fmt.Errorf("OSPREY_PG_ALLOW[%d]: %q has host bits set: did you mean %s?", i, s, p.Masked()))
		default:
			c.allow = append(c.allow, p)
		}
	}

	if listen := fields(getenv("OSPREY_PG_LISTEN")); len(listen) > 0 {
		for i, s := range listen {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("OSPREY_PG_LISTEN[%d]: %q: want an IP address", i, s))
				continue
			}
			c.listen = append(c.listen, a)
		}
	} else {
		own, err := addrs()
		if err != nil {
			errs = append(errs, fmt.Errorf("OSPREY_PG_LISTEN: not set, and the host's addresses are unknown: %w", err))
		} else if len(own) == 0 {
			errs = append(errs, errors.New("OSPREY_PG_LISTEN: not set, and the host has no address but loopback"))
		}
		c.listen = own
	}

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// checkPassword keeps to passwords that SASLprep leaves as they are and
// that fit a URL or a line of a file as they are.
func checkPassword(pw string) error {
	if len(pw) < 12 || len(pw) > 128 {
		return fmt.Errorf("%d characters: want 12 to 128", len(pw))
	}
	for i := range len(pw) {
		if pw[i] <= ' ' || pw[i] > '~' {
			return fmt.Errorf("character %d is not printable ASCII (or is a space)", i+1)
		}
	}
	return nil
}

func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// hostAddrs returns the host's addresses, loopback and link-local aside.
func hostAddrs() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if ip := p.Addr(); !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			out = append(out, ip)
		}
	}
	return out, nil
}

// binDir finds the newest installed server binaries (an image holds one).
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return major(b) - major(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server in /usr/lib/postgresql/*/bin (Debian package postgresql)")
}

// run makes the cluster if there is none, writes pg_hba.conf and execs
// postgres with the settings and then args.
func run(c *config, args []string) error {
	if os.Geteuid() == 0 {
		return errors.New("running as root, which PostgreSQL refuses: run the container as the user postgres (10002)")
	}
	if err := initCluster(c); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(c.dataDir, "pg_hba.conf"), []byte(hbaConf(c))); err != nil {
		return err
	}
	// postgres finds its share and lib directories from its own path, by
	// argv[0].
	bin := filepath.Join(c.binDir, "postgres")
	argv := append([]string{bin, "-D", c.dataDir}, serverSettings(c)...)
	argv = append(argv, args...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OSPREY_PG_PASSWORD") })
	if err := syscall.Exec(bin, argv, env); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	return nil
}

// serverSettings are the image's own settings of postgres.
func serverSettings(c *config) []string {
	var listen []string
	for _, a := range c.listen {
		listen = append(listen, a.String())
	}
	return []string{
		"-c", "listen_addresses=" + strings.Join(listen, ","),
		"-c", "unix_socket_directories=" + c.socketDir,
		"-c", "password_encryption=scram-sha-256",
		// Every central node keeps a pool of up to 32 connections.
		"-c", "max_connections=200",
	}
}

// hbaConf is pg_hba.conf: the superuser over the socket as the system
// user postgres, the role to its database with SCRAM over the socket and
// from the allowed networks, and nothing else.
func hbaConf(c *config) string {
	var b strings.Builder
	b.WriteString("# Written by the image's entry point (pgimage) at every start, from\n" +
		"# OSPREY_PG_ALLOW, OSPREY_PG_USER and OSPREY_PG_DB: change those, not this file.\n")
	fmt.Fprintf(&b, "local\tall\tpostgres\tpeer\n")
	fmt.Fprintf(&b, "local\t%s\t%s\tscram-sha-256\n", c.db, c.user)
	for _, p := range c.allow {
		fmt.Fprintf(&b, "host\t%s\t%s\t%s\tscram-sha-256\n", c.db, c.user, p)
	}
	return b.String()
}

// initCluster makes the cluster when the data directory holds none.
func initCluster(c *config) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	switch entries, err := os.ReadDir(c.dataDir); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("PGDATA: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("PGDATA %s holds files but no PG_VERSION: not a PostgreSQL data directory; move them away", c.dataDir)
	default:
		if err := os.Remove(c.dataDir); err != nil {
			return fmt.Errorf("PGDATA %s: empty, but cannot be replaced (a mount point? mount the volume on %s): %w", c.dataDir, filepath.Dir(c.dataDir), err)
		}
	}
	if c.password == "" {
		return fmt.Errorf("no cluster in %s, and no password for a new one: set OSPREY_PG_PASSWORD or OSPREY_PG_PASSWORD_FILE", c.dataDir)
	}
	tmp := c.dataDir + ".init"
	// What an interrupted first start left.
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	fmt.Fprintf(os.Stderr, "pgimage: no cluster in %s: making one (role %s, database %s)\n", c.dataDir, c.user, c.db)
	// The superuser's password is given to initdb (SCRAM needs one) and
	// then removed.
	initdb := exec.Command(filepath.Join(c.binDir, "initdb"), "-D", tmp, "--username=postgres",
		"--auth-local=peer", "--auth-host=scram-sha-256", "--pwfile=/dev/stdin",
		"--encoding=UTF8", "--locale=C", "--no-instructions")
	initdb.Stdin = strings.NewReader(rand.Text() + "\n")
	initdb.Stdout, initdb.Stderr = os.Stderr, os.Stderr
	if err := initdb.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	sqlText := strings.Join([]string{
		"ALTER ROLE postgres PASSWORD NULL",
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", c.user, scramVerifier(c.password, salt, 4096)),
		fmt.Sprintf("CREATE DATABASE %s OWNER %s", c.db, c.user),
		"",
	}, ";\n")
	// Single user: no listener; exit_on_error makes any error fatal, and
	// the exit status says so.
	single := exec.Command(filepath.Join(c.binDir, "postgres"), "--single", "-D", tmp,
		"-c", "exit_on_error=on", "-c", "log_min_messages=warning", "postgres")
	single.Stdin = strings.NewReader(sqlText)
	var out bytes.Buffer
	single.Stdout, single.Stderr = &out, &out
	if err := single.Run(); err != nil {
		return fmt.Errorf("create role %s and database %s: %w\n%s", c.user, c.db, err, out.Bytes())
	}
	if err := os.Rename(tmp, c.dataDir); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(c.dataDir)); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pgimage: cluster made in %s\n", c.dataDir)
	return nil
}

// scramVerifier is what PostgreSQL stores of a SCRAM-SHA-256 password
// (RFC 5802, RFC 7677): the stored and the server key, never the password.
func scramVerifier(password string, salt []byte, iterations int) string {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		panic(err) // only for parameters FIPS mode refuses, which these are not
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key")))
}

// writeFile writes a file of the data directory atomically, mode 0600.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(0o600), f.Sync(), f.Close())
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
