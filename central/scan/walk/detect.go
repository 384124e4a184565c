package walk

import (
	"bytes"
	"net/http"
)

// Detected types that net/http.DetectContentType does not know.
const (
	TypeWindowsExecutable = "application/x-msdownload"
	TypeELF               = "application/x-executable"
	TypeMachO             = "application/x-mach-binary"
	TypeOLE               = "application/x-ole-storage"
	Type7z                = "application/x-7z-compressed"
	TypeTar               = "application/x-tar"
	TypeXz                = "application/x-xz"
	TypeBzip2             = "application/x-bzip2"
	TypeZip               = "application/zip"
	TypeGzip              = "application/x-gzip"
	TypeJavaClass         = "application/java-vm"
)

var magics = []struct {
	prefix []byte
	typ    string
}{
	{[]byte("MZ"), TypeWindowsExecutable},
	{[]byte("\x7fELF"), TypeELF},
	{[]byte("\xfe\xed\xfa\xce"), TypeMachO},
	{[]byte("\xfe\xed\xfa\xcf"), TypeMachO},
	{[]byte("\xce\xfa\xed\xfe"), TypeMachO},
	{[]byte("\xcf\xfa\xed\xfe"), TypeMachO},
	{[]byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), TypeOLE},
	{[]byte("7z\xbc\xaf\x27\x1c"), Type7z},
	{[]byte("\xfd7zXZ\x00"), TypeXz},
	{[]byte("BZh"), TypeBzip2},
	{[]byte("\xca\xfe\xba\xbe"), TypeJavaClass},
	{[]byte("PK\x03\x04"), TypeZip},
	{[]byte("PK\x05\x06"), TypeZip},
	{[]byte("\x1f\x8b"), TypeGzip},
}

// DetectType names the type of content from its first bytes: the magic
// numbers of executables and archives first, then
// net/http.DetectContentType's sniffing.
func DetectType(head []byte) string {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.prefix) {
			return m.typ
		}
	}
	if len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")) {
		return TypeTar
	}
	return http.DetectContentType(head)
}

// IsExecutableType reports whether a detected type is a native executable.
func IsExecutableType(t string) bool {
	switch t {
	case TypeWindowsExecutable, TypeELF, TypeMachO, TypeJavaClass:
		return true
	}
	return false
}
