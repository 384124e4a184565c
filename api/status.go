package api

import "time"

// Fault is one thing about a sensor that fails now: a configuration it
// refused, or a part (smtp, pop3, spool) that fails.
type Fault struct {
	// Part is "config", "smtp", "pop3" or "spool".
	Part  string
	Error string
	// At is when it last happened; zero when the sensor did not say
	// (a refused configuration).
	At time.Time
}

// Faults lists what fails on the sensor now, as its last status says: the
// configuration it refused, then SMTP, POP3 and the spool when they fail.
// The server list shows the first as the sensor's last error.
func (s *Sensor) Faults() []Fault {
	var out []Fault
	if s.LastError != "" {
		out = append(out, Fault{Part: "config", Error: s.LastError})
	}
	for _, in := range []struct {
		part string
		st   *IntegrationStatus
	}{{"smtp", s.SMTPStatus}, {"pop3", s.POP3Status}} {
		if in.st != nil && in.st.State == IntegrationFailing && in.st.LastError != "" {
			out = append(out, Fault{Part: in.part, Error: in.st.LastError, At: in.st.LastErrorAt})
		}
	}
	if sp := s.SpoolStatus; sp != nil && sp.Error != "" && sp.State != SpoolOK {
		out = append(out, Fault{Part: "spool", Error: sp.Error})
	}
	return out
}
