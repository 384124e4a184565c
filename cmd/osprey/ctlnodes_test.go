package main

import (
	"testing"

	"github.com/ospreysec/osprey/api"
)

func TestHealthLists(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name        string
		node        api.Node
		ok, failing string
	}{
		{"central", api.Node{Roles: []api.NodeRole{api.NodeRoleCentral},
			Health: api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, SQL: true, SMTP: true}}, "etcd,grpc,http,sql", "-"},
		{"sensor with rspamd failing", api.Node{Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor},
			Health: api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, SQL: true, Spool: true, Rspamd: &no}}, "etcd,grpc,http,sql,spool", "smtp,rspamd"},
		{"rspamd working", api.Node{Health: api.NodeHealth{Rspamd: &yes}}, "rspamd", "etcd,grpc,http,sql"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, failing := healthLists(tt.node)
			if ok != tt.ok || failing != tt.failing {
				t.Errorf("got ok %q, failing %q; want %q, %q", ok, failing, tt.ok, tt.failing)
			}
		})
	}
}
