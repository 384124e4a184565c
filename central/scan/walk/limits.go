package walk

import (
	"errors"
	"fmt"
)

// ErrLimit is wrapped by every error that reports a bound being hit, by the
// walker or by an engine (clamd's stream size limit). A scan that hits a bound
// has the verdict "unscannable: limit" unless something matched.
var ErrLimit = errors.New("limit")

// Defaults of Limits. They are sized for a central node scanning messages of
// up to a few hundred megabytes: a legitimate message never nests sixteen
// containers deep or holds two thousand parts, and a member that expands
// a hundred times its compressed size past one megabyte is a bomb, not a
// document.
const (
	DefaultMaxDepth            = 16
	DefaultMaxParts            = 2000
	DefaultMaxTotalBytes       = 512 << 20
	DefaultMaxPartBytes        = 128 << 20
	DefaultMaxCompressionRatio = 100
	DefaultMaxHeaderBytes      = 1 << 20
	DefaultMaxBodyBytes        = 1 << 20
	DefaultMaxURLs             = 5000
	DefaultMemoryBytes         = 1 << 20

	// ratioFloor is the expanded size under which the compression ratio is
	// not checked: a small, very repetitive file is not a bomb.
	ratioFloor = 1 << 20
)

// Limits bound the work of one walk. A zero field takes its default; a
// negative field is invalid (there is no "unlimited": every bound protects
// memory, disk or time).
type Limits struct {
	// MaxDepth bounds the nesting of containers: multipart bodies, attached
	// messages and archives. The message itself is at depth 0. A container
	// deeper than this is kept as an opaque part and not expanded.
	MaxDepth int
	// MaxParts bounds the entities and archive members visited. Past it the
	// walk stops.
	MaxParts int
	// MaxTotalBytes bounds the decoded and expanded bytes of all parts and
	// members together, over the whole walk. The part that reaches it is
	// visited with what was kept, then the walk stops (the rest of the
	// message is still read, for its size and digest).
	MaxTotalBytes int64
	// MaxPartBytes bounds the bytes kept of one part or archive member. A
	// MIME part that is larger is still hashed in full as it streams by, but
	// only its first MaxPartBytes reach the engines; an archive member that
	// is larger is not expanded past the bound and is visited without
	// digests (its name still counts). Either way the part is Truncated.
	MaxPartBytes int64
	// MaxCompressionRatio bounds expanded size / compressed size of an
	// archive member (declared sizes, checked before expanding) and of a
	// whole archive (actual sizes, checked while expanding), for expansions
	// over one megabyte. An archive that breaks it is a bomb: it is expanded
	// no further, and neither is any other archive of the message (MIME
	// parts after it are still scanned).
	MaxCompressionRatio int
	// MaxHeaderBytes bounds the header block of the message and of each part.
	MaxHeaderBytes int
	// MaxBodyBytes bounds the text read from each text or HTML body, for URL
	// extraction and Message.Text and Message.HTML. Going past it is noted,
	// not a bound hit: the whole body still reaches the engines.
	MaxBodyBytes int
	// MaxURLs bounds the distinct URLs collected.
	MaxURLs int
	// MemoryBytes is the size up to which a part's content is kept in memory;
	// a larger part spills to an unlinked temporary file. At most MaxDepth+1
	// parts are held at once, so memory stays near (MaxDepth+1)*MemoryBytes.
	MemoryBytes int
}

// DefaultLimits returns the limits used when a field is zero.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:            DefaultMaxDepth,
		MaxParts:            DefaultMaxParts,
		MaxTotalBytes:       DefaultMaxTotalBytes,
		MaxPartBytes:        DefaultMaxPartBytes,
		MaxCompressionRatio: DefaultMaxCompressionRatio,
		MaxHeaderBytes:      DefaultMaxHeaderBytes,
		MaxBodyBytes:        DefaultMaxBodyBytes,
		MaxURLs:             DefaultMaxURLs,
		MemoryBytes:         DefaultMemoryBytes,
	}
}

// Validate reports every negative field at once.
func (l Limits) Validate() error {
	var errs []error
	check := func(name string, v int64) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("limits.%s: must not be negative, got %d", name, v))
		}
	}
	check("max_depth", int64(l.MaxDepth))
	check("max_parts", int64(l.MaxParts))
	check("max_total_bytes", l.MaxTotalBytes)
	check("max_part_bytes", l.MaxPartBytes)
	check("max_compression_ratio", int64(l.MaxCompressionRatio))
	check("max_header_bytes", int64(l.MaxHeaderBytes))
	check("max_body_bytes", int64(l.MaxBodyBytes))
	check("max_urls", int64(l.MaxURLs))
	check("memory_bytes", int64(l.MemoryBytes))
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts == 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if l.MaxPartBytes == 0 {
		l.MaxPartBytes = d.MaxPartBytes
	}
	if l.MaxCompressionRatio == 0 {
		l.MaxCompressionRatio = d.MaxCompressionRatio
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	if l.MaxURLs == 0 {
		l.MaxURLs = d.MaxURLs
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	return l
}

// Limit names, as they appear in Message.Limits and in the scan metrics.
const (
	LimitDepth       = "depth"
	LimitParts       = "parts"
	LimitTotalBytes  = "total_bytes"
	LimitPartBytes   = "part_bytes"
	LimitRatio       = "compression_ratio"
	LimitHeaderBytes = "header_bytes"
	LimitURLs        = "urls"
)
