package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func validExport() *ospreyv1.SyslogExport {
	return &ospreyv1.SyslogExport{Enabled: true, Address: "siem.example.com:6514", Tls: true}
}

func TestSyslogExport(t *testing.T) {
	certPEM, keyPEM := keyPairPEM(t)
	tests := []struct {
		name       string
		edit       func(e *ospreyv1.SyslogExport)
		wantFields []string
	}{
		{name: "valid", edit: func(e *ospreyv1.SyslogExport) {}},
		{name: "zero", edit: func(e *ospreyv1.SyslogExport) { *e = ospreyv1.SyslogExport{} }},
		{name: "enabled without address", edit: func(e *ospreyv1.SyslogExport) { e.Address = "" }, wantFields: []string{"address"}},
		{name: "disabled without address", edit: func(e *ospreyv1.SyslogExport) { e.Enabled, e.Address = false, "" }},
		{name: "ipv4", edit: func(e *ospreyv1.SyslogExport) { e.Address = "192.0.2.7:514" }},
		{name: "ipv6", edit: func(e *ospreyv1.SyslogExport) { e.Address = "[2001:db8::7]:514" }},
		{name: "no port", edit: func(e *ospreyv1.SyslogExport) { e.Address = "siem.example.com" }, wantFields: []string{"address"}},
		{name: "no host", edit: func(e *ospreyv1.SyslogExport) { e.Address = ":514" }, wantFields: []string{"address"}},
		{name: "bad port", edit: func(e *ospreyv1.SyslogExport) { e.Address = "siem.example.com:0" }, wantFields: []string{"address"}},
		{name: "bad host", edit: func(e *ospreyv1.SyslogExport) { e.Address = "siem_1.example.com:514" }, wantFields: []string{"address"}},
		{name: "bad address when disabled", edit: func(e *ospreyv1.SyslogExport) { e.Enabled, e.Address = false, "x" }, wantFields: []string{"address"}},
		{name: "facility", edit: func(e *ospreyv1.SyslogExport) { e.Facility = 23 }},
		{name: "facility too big", edit: func(e *ospreyv1.SyslogExport) { e.Facility = 24 }, wantFields: []string{"facility"}},
		{name: "ca", edit: func(e *ospreyv1.SyslogExport) { e.CaPem = certPEM }},
		{name: "ca bad", edit: func(e *ospreyv1.SyslogExport) { e.CaPem = keyPEM }, wantFields: []string{"ca_pem"}},
		{name: "server name", edit: func(e *ospreyv1.SyslogExport) { e.ServerName = "siem.internal" }},
		{name: "server name bad", edit: func(e *ospreyv1.SyslogExport) { e.ServerName = "a b" }, wantFields: []string{"server_name"}},
		{name: "app name", edit: func(e *ospreyv1.SyslogExport) { e.AppName = "osprey-hq" }},
		{name: "app name space", edit: func(e *ospreyv1.SyslogExport) { e.AppName = "osprey hq" }, wantFields: []string{"app_name"}},
		{name: "app name non-ascii", edit: func(e *ospreyv1.SyslogExport) { e.AppName = "ösprey" }, wantFields: []string{"app_name"}},
		{name: "app name nil value", edit: func(e *ospreyv1.SyslogExport) { e.AppName = "-" }, wantFields: []string{"app_name"}},
		{name: "app name 48", edit: func(e *ospreyv1.SyslogExport) { e.AppName = strings.Repeat("a", 48) }},
		{name: "app name 49", edit: func(e *ospreyv1.SyslogExport) { e.AppName = strings.Repeat("a", 49) }, wantFields: []string{"app_name"}},
		{name: "everything at once", edit: func(e *ospreyv1.SyslogExport) {
			*e = ospreyv1.SyslogExport{Enabled: true, Facility: 99, CaPem: "junk", ServerName: "[x]", AppName: "a b"}
		}, wantFields: []string{"address", "facility", "ca_pem", "server_name", "app_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validExport()
			tt.edit(e)
			before := proto.Clone(e)
			err := SyslogExport(e)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("SyslogExport() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if !proto.Equal(before, e) {
				t.Error("SyslogExport modified its argument")
			}
		})
	}
}
