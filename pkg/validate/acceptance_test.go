package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestAcceptanceList(t *testing.T) {
	const in = ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND
	tests := []struct {
		name   string
		list   *ospreyv1.AcceptanceList
		fields []string
	}{
		{"valid", &ospreyv1.AcceptanceList{Kind: in, Entries: []string{"10.0.0.0/8", "!10.1.0.0/16", "2001:db8::/32", "example.com"}}, nil},
		{"empty", &ospreyv1.AcceptanceList{Kind: in}, nil},
		{"no kind", &ospreyv1.AcceptanceList{Entries: []string{"192.0.2.1"}}, []string{"kind"}},
		{"bad entries", &ospreyv1.AcceptanceList{Kind: in, Entries: []string{"10.0.0.1/8", "192.0.2.1", "!192.0.2.1"}}, []string{"entries[0]", "entries[2]"}},
		{"not canonical", &ospreyv1.AcceptanceList{Kind: in, Entries: []string{"2001:DB8::1"}}, []string{"entries[0]"}},
		{"not sorted", &ospreyv1.AcceptanceList{Kind: in, Entries: []string{"192.0.2.2", "192.0.2.1"}}, []string{"entries[0]"}},
		{"repeated", &ospreyv1.AcceptanceList{Kind: in, Entries: []string{"192.0.2.1", "192.0.2.1"}}, []string{"entries[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AcceptanceList(tt.list)
			var got []string
			if es, ok := AsErrors(err); ok {
				for _, e := range es {
					got = append(got, e.Field)
				}
			} else if err != nil {
				t.Fatalf("got %v (%T), want field errors", err, err)
			}
			if diff := cmp.Diff(tt.fields, got); diff != "" {
				t.Errorf("fields (-want +got):\n%s\n%v", diff, err)
			}
		})
	}
}

func TestAcceptanceErrors(t *testing.T) {
	_, err := acceptlist.Import(strings.NewReader("192.0.2.1\nbad entry\n"), nil)
	es, ok := AsErrors(AcceptanceErrors(err))
	if !ok || len(es) != 2 || es[0].Field != "line 2" || es[1].Field != "line 2" {
		t.Errorf("import errors: got %v", es)
	}
	base, _ := acceptlist.Parse([]string{"192.0.2.1"})
	_, err = base.Edit([]string{"x"}, []string{"192.0.2.2"})
	es, ok = AsErrors(AcceptanceErrors(err))
	if !ok || len(es) != 2 || es[0].Field != "remove[0]" || es[1].Field != "add[0]" {
		t.Errorf("edit errors: got %v", es)
	}
	if AcceptanceErrors(nil) != nil {
		t.Error("AcceptanceErrors(nil) is not nil")
	}
}
