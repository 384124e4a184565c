// Package tests holds end-to-end tests that build the osprey binary and run it
// as a user would: as processes, with real peers, and (later) in containers.
package tests
