package eicar_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/central/scan/eicar"
	"github.com/ospreysec/osprey/central/scan/walk"
)

func TestIs(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"exact", eicar.String, true},
		{"trailing white space", eicar.String + " \t\r\n\x1a", true},
		{"128 bytes", eicar.String + strings.Repeat(" ", 128-len(eicar.String)), true},
		{"129 bytes", eicar.String + strings.Repeat(" ", 129-len(eicar.String)), false},
		{"other text after", eicar.String + "x", false},
		{"not at the start", " " + eicar.String, false},
		{"truncated", eicar.String[:67], false},
	}
	for _, tt := range tests {
		if got := eicar.Is([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if len(eicar.String) != 68 {
		t.Errorf("the test file is %d bytes, want 68", len(eicar.String))
	}
}

func TestEngine(t *testing.T) {
	// Parts built by a walk, so Head and Size are real.
	msg := "Content-Type: application/octet-stream; name=e.com\r\n\r\n" + eicar.String + "\r\n"
	var got []string
	_, err := walk.Walk(context.Background(), strings.NewReader(msg), walk.Options{}, func(p *walk.Part) error {
		ms, err := eicar.Engine{}.ScanPart(context.Background(), p, nil)
		for _, m := range ms {
			got = append(got, m.GetRuleId()+" "+m.GetSeverity().String()+" "+m.GetPart())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "EICAR-Test-File SEVERITY_HIGH attachment e.com"; len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want [%q]", got, want)
	}
}
