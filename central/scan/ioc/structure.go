package ioc

import (
	"context"
	"strings"

	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// StructureName is the structure engine's name.
const StructureName = "structure"

// Rule IDs of the structure engine's matches.
const (
	RuleDoubleExtension     = "Double-Extension"
	RuleExecutableInArchive = "Executable-In-Archive"
	RuleRightToLeftOverride = "Right-To-Left-Override"
)

// executableExts are extensions Windows runs or interprets on a double
// click.
var executableExts = setOf("exe", "scr", "com", "pif", "bat", "cmd", "vbs", "vbe", "js", "jse",
	"wsf", "wsh", "hta", "msi", "msp", "dll", "cpl", "jar", "ps1", "psm1", "lnk", "reg", "scf",
	"msc", "gadget", "application", "appref-ms", "chm", "sct", "inf", "ws")

// decoyExts are extensions of documents and media that a double extension
// pretends to be.
var decoyExts = setOf("pdf", "doc", "docx", "docm", "xls", "xlsx", "xlsm", "ppt", "pptx", "rtf",
	"txt", "csv", "odt", "ods", "jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "mp3", "mp4",
	"avi", "mov", "wav", "htm", "html", "zip", "rar", "7z", "eml", "xml", "json")

func setOf(v ...string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

// Structure finds structural signs of malicious attachments, with no rule:
// a double extension ("invoice.pdf.exe", high), an executable inside an
// archive by extension or by content (medium), a right-to-left override
// character in a name (high). The zero value is ready to use.
type Structure struct{}

// Name returns "structure".
func (Structure) Name() string { return StructureName }

// ScanPart looks at an attachment's or member's name and detected type.
func (Structure) ScanPart(_ context.Context, p *walk.Part, _ *RuleSet) ([]*ospreyv1.Match, error) {
	if p.Kind == walk.KindBody {
		return nil, nil
	}
	var out []*ospreyv1.Match
	where := p.Where()
	add := func(id string, sev ospreyv1.Severity, what string) {
		out = append(out, &ospreyv1.Match{Engine: StructureName, RuleId: id, Severity: sev, What: what, Part: where})
	}
	name := strings.ToLower(p.Filename)
	if strings.ContainsRune(name, '\u202e') {
		add(RuleRightToLeftOverride, ospreyv1.Severity_SEVERITY_HIGH, where+" has a right-to-left override character in its name")
	}
	exts := extensions(name)
	last := ""
	if n := len(exts); n > 0 {
		last = exts[n-1]
		if n >= 2 && executableExts[last] && decoyExts[exts[n-2]] {
			add(RuleDoubleExtension, ospreyv1.Severity_SEVERITY_HIGH, where+" has a double extension")
		}
	}
	if p.InArchive {
		switch {
		case executableExts[last]:
			add(RuleExecutableInArchive, ospreyv1.Severity_SEVERITY_MEDIUM, where+" is an executable (."+last+") in an archive")
		case walk.IsExecutableType(p.DetectedType):
			add(RuleExecutableInArchive, ospreyv1.Severity_SEVERITY_MEDIUM, where+" is an executable ("+p.DetectedType+") in an archive")
		}
	}
	return out, nil
}

// extensions splits a name's dotted suffixes, trimming the spaces that
// hide them ("a.pdf   .exe" has "pdf" and "exe").
func extensions(name string) []string {
	f := strings.Split(name, ".")
	if len(f) < 2 {
		return nil
	}
	out := f[1:]
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}
