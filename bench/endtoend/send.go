package main

import (
	"errors"
	"fmt"
	"log"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// load is what a round sends.
type load struct {
	messages int
	duration time.Duration // when set, instead of messages
	size     int           // KB
	sessions int
}

// check says whether the load can be split among n nodes.
func (l load) check(n int) error {
	var errs []error
	if l.sessions < n {
		errs = append(errs, fmt.Errorf("-sessions %d: fewer than the %d nodes", l.sessions, n))
	}
	if l.duration == 0 && l.messages < n {
		errs = append(errs, fmt.Errorf("-messages %d: fewer than the %d nodes", l.messages, n))
	}
	return errors.Join(errs...)
}

// send drives every SMTP listener in addrs at once with smtp-source, the
// sessions and messages split among them, and returns how many messages it
// sent. With a duration, each listener takes batches of 2,000 until the
// time from start is up.
func send(addrs []string, l load, start time.Time) int {
	sent := make([]int, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		sessions := share(l.sessions, len(addrs), i)
		wg.Go(func() {
			if l.duration == 0 {
				sent[i] = share(l.messages, len(addrs), i)
				smtpSource(addr, sessions, sent[i], l.size)
				return
			}
			for time.Since(start) < l.duration {
				smtpSource(addr, sessions, 2000, l.size)
				sent[i] += 2000
			}
		})
	}
	wg.Wait()
	total := 0
	for _, n := range sent {
		total += n
	}
	return total
}

// share is part i of total split in n parts.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

func smtpSource(addr string, sessions, messages, size int) {
	out, err := exec.Command("smtp-source", "-s", strconv.Itoa(sessions), "-l", strconv.Itoa(size<<10), "-m", strconv.Itoa(messages),
		"-f", "bench@example.org", "-t", "bench@example.com", addr).CombinedOutput()
	if err != nil {
		log.Fatalf("smtp-source %s: %v\n%s", addr, err, out)
	}
}
