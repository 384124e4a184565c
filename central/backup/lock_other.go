//go:build !(linux || darwin || freebsd)

package backup

// locked cannot tell on this system: a restore with --force trusts the
// operator to have stopped the node.
func locked(string) (bool, error) { return false, nil }
