package gossip

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetaRoundTrip(t *testing.T) {
	long := strings.Repeat("n", 63)
	v6 := "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
	tests := []struct {
		name string
		meta Meta
	}{
		{"empty", Meta{}},
		{"typical", sensorMeta(1)},
		{"largest", Meta{
			Roles:    []Role{RoleCentral, RoleSensor},
			GRPCAddr: v6, HTTPAddr: v6, SMTPAddr: v6,
			Health: Health{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: true, SQL: true, RspamdUsed: true, Rspamd: true},
		}},
		{"rspamd failing", Meta{Roles: []Role{RoleCentral}, Health: Health{Etcd: true, RspamdUsed: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeMeta(long, tt.meta, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d bytes: %s", len(b), b)
			got, leaving, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if leaving {
				t.Error("leaving set")
			}
			if diff := cmp.Diff(tt.meta, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{"empty", "", nil},
		{"not json", "{", nil},
		{"no version", `{"n":"x"}`, ErrMetaVersion},
		{"future version", `{"v":2,"n":"x"}`, ErrMetaVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeMeta([]byte(tt.in))
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
	// Unknown fields and components from a newer writer are ignored.
	m, _, err := decodeMeta([]byte(`{"v":1,"r":["sensor"],"s":"10.0.0.1:25","ok":["smtp","spool","quantum"],"new":1}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{Roles: []Role{RoleSensor}, SMTPAddr: "10.0.0.1:25", Health: Health{SMTP: true, Spool: true}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// An optional component is healthy only where the node says it has it.
	m, _, err = decodeMeta([]byte(`{"v":1,"r":["central"],"ok":["etcd","rspamd"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Health{Etcd: true}); m.Health != want {
		t.Errorf("rspamd ok but not used: got %+v, want %+v", m.Health, want)
	}
}

func TestMetaTooLarge(t *testing.T) {
	roles := make([]Role, 100)
	for i := range roles {
		roles[i] = "role"
	}
	if _, err := encodeMeta("n", Meta{Roles: roles}, false); err == nil {
		t.Error("encoded metadata over 512 bytes")
	}
}

func TestMemberHealth(t *testing.T) {
	gossipAddr := netip.MustParseAddrPort("10.0.0.9:7946")
	tests := []struct {
		name    string
		m       Member
		role    Role
		healthy bool
		addr    string
	}{
		{"central ok", Member{Addr: gossipAddr, Meta: sensorMeta(1)}, RoleCentral, true, "127.0.1.1:7443"},
		{"sensor ok, IPv6", Member{Addr: gossipAddr, Meta: sensorMeta(1)}, RoleSensor, true, "[fd00::1]:25"},
		{"dead", Member{Addr: gossipAddr, State: StateDead, Meta: sensorMeta(1)}, RoleSensor, false, "[fd00::1]:25"},
		{"left", Member{Addr: gossipAddr, State: StateLeft, Meta: sensorMeta(1)}, RoleCentral, false, "127.0.1.1:7443"},
		{"spool full", Member{Addr: gossipAddr, Meta: func() Meta { m := sensorMeta(1); m.Health.Spool = false; return m }()}, RoleSensor, false, "[fd00::1]:25"},
		{"etcd unreachable", Member{Addr: gossipAddr, Meta: func() Meta { m := sensorMeta(1); m.Health.Etcd = false; return m }()}, RoleCentral, false, "127.0.1.1:7443"},
		{"no such role", Member{Addr: gossipAddr, Meta: Meta{Roles: []Role{RoleCentral}, SMTPAddr: "10.0.0.1:25", Health: Health{SMTP: true, Spool: true}}}, RoleSensor, false, "10.0.0.1:25"},
		{"unspecified host", Member{Addr: gossipAddr, Meta: Meta{Roles: []Role{RoleSensor}, SMTPAddr: "[::]:25", Health: Health{SMTP: true, Spool: true}}}, RoleSensor, true, "10.0.0.9:25"},
		{"no address", Member{Addr: gossipAddr, Meta: Meta{Roles: []Role{RoleSensor}, Health: Health{SMTP: true, Spool: true}}}, RoleSensor, false, ""},
		{"bad meta", Member{Addr: gossipAddr, Meta: sensorMeta(1), MetaErr: ErrMetaVersion}, RoleCentral, false, "127.0.1.1:7443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.HealthyFor(tt.role); got != tt.healthy {
				t.Errorf("HealthyFor(%s) = %v, want %v", tt.role, got, tt.healthy)
			}
			ap, ok := tt.m.ServiceAddr(tt.role)
			if got := map[bool]string{true: ap.String(), false: ""}[ok]; got != tt.addr {
				t.Errorf("ServiceAddr(%s) = %q, want %q", tt.role, got, tt.addr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"ok", Options{NodeName: "n", BindAddr: ":7946", Key: testKey, RequireEncryption: true}, nil},
		{"dev without key", Options{NodeName: "n", BindAddr: "127.0.0.1:0"}, nil},
		{"everything wrong", Options{
			BindAddr: "nowhere", AdvertiseAddr: "0.0.0.0:1", Seeds: []string{"noport"},
			Key: "bm90IDMyIGJ5dGVz", Meta: Meta{SMTPAddr: "mail:25"}, RejoinInterval: -1,
		}, []string{"--node-name", "--gossip-addr", "--gossip-advertise-addr", "--join", "--gossip-key", "SMTP address", "rejoin interval"}},
		{"key required", Options{NodeName: "n", BindAddr: ":0", RequireEncryption: true}, []string{"--gossip-key or --gossip-keyring-file"}},
		{"both keys", Options{NodeName: "n", BindAddr: ":0", Key: testKey, KeyringFile: "k.json"}, []string{"give one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
	if err := (&Options{NodeName: "n", BindAddr: ":0", RequireEncryption: true}).Validate(); !errors.Is(err, ErrEncryptionRequired) {
		t.Errorf("missing key: %v, want ErrEncryptionRequired", err)
	}
}

func TestKeys(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey(EncodeKey(k))
	if err != nil || !bytes.Equal(got, k) {
		t.Errorf("ParseKey(EncodeKey(k)) = %x, %v", got, err)
	}
	secret := EncodeKey([]byte("short"))
	if _, err := ParseKey(secret); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("short key: %v; want an error without the key", err)
	}

	file := filepath.Join(t.TempDir(), "keyring.json")
	k2, _ := NewKey()
	if err := WriteKeyringFile(file, [][]byte{k, k2}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("keyring file mode %v, %v; want 0600", fi.Mode(), err)
	}
	keys, err := ReadKeyringFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]byte{k, k2}, keys); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{`[]`, `{}`, `["bm9wZQ=="]`} {
		os.WriteFile(file, []byte(bad), 0o600)
		if _, err := ReadKeyringFile(file); err == nil {
			t.Errorf("keyring %s: no error", bad)
		}
	}
}

func TestMemberlistLogBridge(t *testing.T) {
	var buf bytes.Buffer
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "gossip"))
	l.Printf("[DEBUG] memberlist: hidden")
	l.Printf("[WARN] memberlist: Refuting a suspect message (from: node-2)")
	l.Printf("[ERR] memberlist: Failed fallback TCP ping: boom")
	l.Printf("no level at all")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="Refuting a suspect message (from: node-2)" component=gossip`,
		`level=ERROR msg="Failed fallback TCP ping: boom"`,
		`level=INFO msg="no level at all"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug line logged at info level:\n%s", out)
	}
}
