// Package testwait is how a test waits for a condition that the code under
// test gives no signal of: it checks the condition often until it holds,
// and fails the test, naming what it waited for, if it does not hold within
// a generous deadline.
//
// It is the one such helper of the module's tests. Where the code under
// test does signal (a channel, a stream's next message, a Changed channel),
// a test waits on the signal instead. A test never sleeps a fixed time,
// neither to let something happen nor to show that something did not: the
// first is slow where the machine is fast and flaky where it is busy, and
// the second passes without testing anything on a busy machine.
package testwait

import (
	"testing"
	"time"
)

// Timeout bounds each wait. It is generous on purpose: it only turns a
// condition that never comes true into a failure that says what was awaited,
// and a busy machine (two cores running -race tests) must not fail a test
// that is merely slow.
const Timeout = 3 * time.Minute

// firstPoll and maxPoll bound the time between two checks of a condition:
// it starts short, for conditions that hold at once, and doubles up to
// maxPoll, so that a costly check (an API listing, a round of requests) does
// not load the system under test for the whole of a long wait.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 250 * time.Millisecond
)

// For waits until cond holds, checking it often, and fails t if it does
// not within Timeout. what says what the test waits for, as in "the spool
// to be empty".
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for poll := firstPoll; !cond(); poll = min(2*poll, maxPoll) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, Timeout)
		}
		time.Sleep(poll)
	}
}
