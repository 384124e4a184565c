package ui

import (
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestTLSVersion: the envelope's TLS version is shown once Envelope has a
// tls_version field, whichever of the likely types it takes; messages
// without one show none. The fields are made here, on an Envelope of a
// test's own, since the real one has none yet.
func TestTLSVersion(t *testing.T) {
	if got := tlsVersion((&ospreyv1.Envelope{Tls: true}).ProtoReflect()); got != "" {
		t.Errorf("today's Envelope: got %q, want none", got)
	}
	str, u32, i64, enum := descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_UINT32,
		descriptorpb.FieldDescriptorProto_TYPE_INT64, descriptorpb.FieldDescriptorProto_TYPE_ENUM
	tests := []struct {
		name  string
		typ   descriptorpb.FieldDescriptorProto_Type
		value protoreflect.Value // invalid: unset
		want  string
	}{
		{"a name", str, protoreflect.ValueOfString("TLS 1.3"), "TLS 1.3"},
		{"a name made visible", str, protoreflect.ValueOfString("TLS\u202e1.3"), `TLS\u202e1.3`},
		{"unset", str, protoreflect.Value{}, ""},
		{"the protocol's number", u32, protoreflect.ValueOfUint32(0x0304), "TLS 1.3"},
		{"an older one", i64, protoreflect.ValueOfInt64(0x0301), "TLS 1.0"},
		{"a number not a version", u32, protoreflect.ValueOfUint32(0x7f17), "0x7F17"},
		{"a number out of range", i64, protoreflect.ValueOfInt64(1 << 20), "1048576"},
		{"an enum", enum, protoreflect.ValueOfEnum(2), "TLS_VERSION_1_3"},
		{"an enum value not named", enum, protoreflect.ValueOfEnum(9), "9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := envelopeWithTLSVersion(t, tt.typ)
			if tt.value.IsValid() {
				m.Set(m.Descriptor().Fields().ByName("tls_version"), tt.value)
			}
			if got := tlsVersion(m); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// envelopeWithTLSVersion is an empty message named Envelope with a bool
// tls and a tls_version of type typ.
func envelopeWithTLSVersion(t *testing.T, typ descriptorpb.FieldDescriptorProto_Type) *dynamicpb.Message {
	t.Helper()
	field := &descriptorpb.FieldDescriptorProto{Name: ptr("tls_version"), Number: ptr[int32](8), Type: typ.Enum(),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
	fd := &descriptorpb.FileDescriptorProto{
		Name: ptr("test/envelope.proto"), Package: ptr("test"), Syntax: ptr("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: ptr("Envelope"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: ptr("tls"), Number: ptr[int32](5), Type: descriptorpb.FieldDescriptorProto_TYPE_BOOL.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
			field,
		}}},
	}
	if typ == descriptorpb.FieldDescriptorProto_TYPE_ENUM {
		field.TypeName = ptr(".test.TLSVersion")
		fd.EnumType = []*descriptorpb.EnumDescriptorProto{{Name: ptr("TLSVersion"), Value: []*descriptorpb.EnumValueDescriptorProto{
			{Name: ptr("TLS_VERSION_UNSPECIFIED"), Number: ptr[int32](0)},
			{Name: ptr("TLS_VERSION_1_2"), Number: ptr[int32](1)},
			{Name: ptr("TLS_VERSION_1_3"), Number: ptr[int32](2)},
		}}}
	}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessage(file.Messages().ByName("Envelope"))
}

func ptr[T any](v T) *T { return &v }
