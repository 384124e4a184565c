package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// AcceptanceMode says which clients a gateway listener takes mail from.
type AcceptanceMode string

// The acceptance modes.
const (
	// AcceptanceAll takes mail from every IP address and domain (the default).
	AcceptanceAll AcceptanceMode = "all"
	// AcceptanceListed takes mail only from the clients of the listener's acceptance list.
	AcceptanceListed AcceptanceMode = "listed"
)

// AcceptanceListKind names one of a gateway sensor's acceptance lists: the last element
// of its path, /api/v1/sensors/{id}/acceptance/{kind}.
type AcceptanceListKind string

// The acceptance lists.
const (
	// AcceptanceInbound: the clients the inbound listeners take mail from when
	// inbound_acceptance is listed.
	AcceptanceInbound AcceptanceListKind = "inbound"
	// AcceptanceOutbound: the clients that may relay to any domain (the trusted
	// networks): the outbound listeners' clients.
	AcceptanceOutbound AcceptanceListKind = "outbound"
	// AcceptanceAuth: the clients the submission listener takes authenticated mail from
	// when its acceptance is listed.
	AcceptanceAuth AcceptanceListKind = "auth"
)

// Bounds of a page of an acceptance list.
const (
	DefaultAcceptancePage = 100
	MaxAcceptancePage     = 5000
)

// AcceptancePage is a page of an acceptance list: IP addresses, CIDR prefixes ("!"
// excludes one) and domains, in canonical form and order (docs/configuration.md,
// "Acceptance lists").
type AcceptancePage struct {
	// Entries are the list's entries from Offset on.
	Entries []string `json:"entries"`
	Offset  int      `json:"offset"`
	// Total is the number of entries of the whole list.
	Total int `json:"total"`
	// Version is the list's version (0: never written), for a later edit.
	Version int64 `json:"version"`
}

// AcceptanceEdit removes entries from an acceptance list and adds others: an entry is
// edited by removing it and adding its new form. An entry removed must be in the list (in
// any form that reads the same); one added that is there already changes nothing.
type AcceptanceEdit struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
	// Version is the version the edit was made from: the edit is refused (409) when the
	// list has changed since. 0 edits whatever version the list is at.
	Version int64 `json:"version"`
}

// AcceptanceResult is an acceptance list after a write.
type AcceptanceResult struct {
	Version int64 `json:"version"`
	Total   int   `json:"total"`
	// Changed is false when the write left the list as it was.
	Changed bool `json:"changed"`
}

func acceptancePath(sensor string, kind AcceptanceListKind, sub string) (string, error) {
	switch kind {
	case AcceptanceInbound, AcceptanceOutbound, AcceptanceAuth:
	default:
		return "", fmt.Errorf("api: no acceptance list %q: want inbound, outbound or auth", kind)
	}
	return sensorPath(sensor, "acceptance/"+string(kind)+sub)
}

// Acceptance returns limit entries of a sensor's acceptance list from offset on (limit 0:
// DefaultAcceptancePage; at most MaxAcceptancePage), with the list's size and version.
func (c *Client) Acceptance(ctx context.Context, sensor string, kind AcceptanceListKind, offset, limit int) (*AcceptancePage, error) {
	p, err := acceptancePath(sensor, kind, "")
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	if offset != 0 {
		v.Set("offset", strconv.Itoa(offset))
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out AcceptancePage
	if _, err := c.do(ctx, http.MethodGet, withQuery(p, v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EditAcceptance applies an edit to a sensor's acceptance list. Bad entries are refused
// all at once with an *Error whose fields name each ("add[0]", "remove[2]").
func (c *Client) EditAcceptance(ctx context.Context, sensor string, kind AcceptanceListKind, edit AcceptanceEdit) (*AcceptanceResult, error) {
	p, err := acceptancePath(sensor, kind, "")
	if err != nil {
		return nil, err
	}
	var out AcceptanceResult
	if _, err := c.do(ctx, http.MethodPost, p, nil, edit, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClearAcceptance deletes every entry of a sensor's acceptance list; version works as
// in PutSMTP.
func (c *Client) ClearAcceptance(ctx context.Context, sensor string, kind AcceptanceListKind, version int64) (*AcceptanceResult, error) {
	p, err := acceptancePath(sensor, kind, "")
	if err != nil {
		return nil, err
	}
	var out AcceptanceResult
	if _, err := c.do(ctx, http.MethodDelete, p, ifMatchHeader(version), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ImportAcceptance reads a file of entries delimited by commas, semicolons, spaces, tabs
// and line ends into a sensor's acceptance list: in place of its entries, or beside them
// with add. A file with bad entries is refused whole, with an *Error whose fields name
// each bad entry's line ("line 3"). Version works as in PutSMTP.
func (c *Client) ImportAcceptance(ctx context.Context, sensor string, kind AcceptanceListKind, r io.Reader, add bool, version int64) (*AcceptanceResult, error) {
	p, err := acceptancePath(sensor, kind, "")
	if err != nil {
		return nil, err
	}
	if add {
		p = withQuery(p, url.Values{"mode": {"append"}})
	}
	var out AcceptanceResult
	if _, err := c.do(ctx, http.MethodPut, p, ifMatchHeader(version), rawBody{contentType: "text/plain; charset=utf-8", r: r}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExportAcceptance writes a sensor's acceptance list to w, one entry a line.
func (c *Client) ExportAcceptance(ctx context.Context, sensor string, kind AcceptanceListKind, w io.Writer) error {
	p, err := acceptancePath(sensor, kind, "/export")
	if err != nil {
		return err
	}
	return c.stream(ctx, p, "text/plain", w)
}

// ifMatchHeader is the If-Match header of a write made from version (none for 0).
func ifMatchHeader(version int64) http.Header {
	if version <= 0 {
		return nil
	}
	return http.Header{"If-Match": {FormatETag(version)}}
}
