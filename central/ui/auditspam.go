package ui

import (
	"strconv"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The spam engine's opinion of a message, as its detail on the Audit log
// shows it: Rspamd's score against its own threshold, its suggested
// action, and the rules (symbols) that fired with their weights. The
// names come from Rspamd's configuration; they go through display all
// the same.

// spamView is a message's spam result.
type spamView struct {
	Score, Required string
	// Spam says the score is at or above the threshold.
	Spam        bool
	Action      string
	ActionClass string
	Symbols     []spamSymbolView
	// NotChecked, when set, says why Rspamd gave no score; the rest is
	// then empty.
	NotChecked string
}

// notCheckedText says why a message has no spam score.
func notCheckedText(why string) string {
	switch why {
	case "error":
		return "Rspamd failed or did not answer in time"
	case "too_large":
		return "the message is over the size Rspamd is sent"
	case "paused":
		return "checks were left out for a while after Rspamd failed several times in a row"
	}
	return display(why)
}

// spamSymbolView is a symbol; its score has its sign, "+" too.
type spamSymbolView struct{ Name, Score string }

// spamActionClass is the class of an action's badge: reject reads as
// detected, the other actions on spam as a warning, none as clean.
func spamActionClass(action string) string {
	switch action {
	case "no action":
		return "verdict-clean"
	case "reject":
		return "verdict-detected"
	case "greylist", "add header", "rewrite subject", "soft reject":
		return "verdict-unscannable"
	}
	return "verdict-other"
}

// score writes a score as Rspamd's own log does, with two decimals.
func score(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

func newSpamView(s *ospreyv1.SpamResult) *spamView {
	if s == nil {
		return nil
	}
	if s.GetNotChecked() != "" {
		return &spamView{NotChecked: notCheckedText(s.GetNotChecked())}
	}
	v := &spamView{
		Score: score(s.GetScore()), Required: score(s.GetRequiredScore()), Spam: s.GetScore() >= s.GetRequiredScore(),
		Action: display(s.GetAction()), ActionClass: spamActionClass(s.GetAction()),
	}
	for _, sym := range s.GetSymbols() {
		sv := spamSymbolView{Name: display(sym.GetName()), Score: score(sym.GetScore())}
		if sym.GetScore() > 0 {
			sv.Score = "+" + sv.Score
		}
		v.Symbols = append(v.Symbols, sv)
	}
	return v
}
