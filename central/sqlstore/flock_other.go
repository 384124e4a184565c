//go:build !(linux || darwin || freebsd)

package sqlstore

// lockFile does nothing where flock is missing: one process opens the
// data dir's database.
func lockFile(string) (func(), error) { return func() {}, nil }
