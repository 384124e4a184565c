package spool

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestEnvelopeJSONMatchesProtojson(t *testing.T) {
	// full sets every field of the envelope, so that a field added to the
	// proto and not to envelopeJSON fails the round trip.
	full := &ospreyv1.Envelope{MailFrom: "a@example.com", RcptTo: []string{"b@example.org", "c\"<>&\u2028@example.org"}, ClientAddr: "[2001:db8::1]:25",
		Helo: "mx.example.com", Tls: true, ReceivedAt: timestamppb.New(time.Unix(1700000000, 0)), Mailbox: "u@pop.example.com",
		TlsVersion: "TLS 1.3", TlsCipher: "TLS_AES_128_GCM_SHA256", Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND,
		Auth: &ospreyv1.AuthResults{Spf: "softfail", SpfDomain: "example.com", Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.org",
			Dkim: []*ospreyv1.DkimResult{{Result: "pass", Domain: "example.org", Selector: "s1"}, {Result: "permerror"}}},
		AuthUser: "alice@example.com"}
	for _, m := range []proto.Message{full, full.GetAuth(), full.GetAuth().GetDkim()[0]} {
		fields := m.ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			if !m.ProtoReflect().Has(fields.Get(i)) {
				t.Fatalf("the test's full envelope does not set %s: set it here and in envelopeJSON", fields.Get(i).FullName())
			}
		}
	}
	for _, e := range []*ospreyv1.Envelope{
		{},
		full,
		{ReceivedAt: timestamppb.New(time.Unix(1700000000, 120_000_000))},
		{ReceivedAt: timestamppb.New(time.Unix(1700000000, 123_456_000))},
		{ReceivedAt: timestamppb.New(time.Unix(1700000000, 123_456_789))},
		{ReceivedAt: timestamppb.New(time.Unix(-1, 5))},
		{MailFrom: "\xff invalid utf-8"},
	} {
		got, err := json.Marshal(newEnvelopeJSON(e))
		if err != nil {
			t.Fatal(err)
		}
		back := &ospreyv1.Envelope{}
		if err := protojson.Unmarshal(got, back); err != nil {
			t.Fatalf("protojson cannot read %s: %v", got, err)
		}
		if e.GetMailFrom() == "\xff invalid utf-8" {
			continue // encoding/json replaces the byte; protojson refuses it: both keep a valid record
		}
		if !proto.Equal(back, e) {
			t.Errorf("round trip of %v through %s gave %v", e, got, back)
		}
		want, err := protojson.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("encoding/json wrote %s, protojson %s", got, want)
		}
	}
}

func TestIDTime(t *testing.T) {
	var g idGen
	now := time.Date(2026, 12, 7, 9, 30, 0, 123, time.UTC)
	got, ok := IDTime(g.next(now))
	if !ok || !got.Equal(now) {
		t.Errorf("IDTime = %v, %v; want %v, true", got, ok, now)
	}
	if _, ok := IDTime("../../etc/passwd"); ok {
		t.Error("IDTime accepted a path")
	}
}
