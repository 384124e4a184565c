package store

import "errors"

// Errors callers tell apart with errors.Is. The store wraps them with context.
var (
	// ErrNotFound: no such object in the caller's scope. An object of another
	// tenant is reported exactly like one that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create found the id taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: a compare-and-swap write found a version other than the
	// one the caller read; nothing was written.
	ErrConflict = errors.New("version conflict")
	// ErrForbidden: the scope may not do this at all (a tenant scope creating a
	// tenant or an admin user, or naming another tenant in what it writes).
	ErrForbidden = errors.New("forbidden")
	// ErrInvalidID: an id cannot be used in a key (see the layout in keys.go).
	ErrInvalidID = errors.New("invalid id")
	// ErrCompacted: a watch asked for revisions etcd no longer keeps; take a
	// fresh snapshot and watch from its revision.
	ErrCompacted = errors.New("revision compacted")
	// ErrTokenExpired: a join token is past its expires_at.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenUsedUp: a join token has no uses left.
	ErrTokenUsedUp = errors.New("token used up")
	// ErrUnavailable: etcd did not answer because it has no quorum (no leader,
	// a leader election, or too few members reachable); nothing was written
	// unless the caller reads it back. Retry later, or on another node.
	ErrUnavailable = errors.New("configuration store unavailable: no etcd quorum")
)
