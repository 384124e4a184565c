package spool

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the spool's [Stats] as Prometheus metrics, read at each
// scrape.
type Collector struct {
	s *Spool

	messages, bytes, diskBytes, segments, tombstones *prometheus.Desc
	puts, removes, failures, rejected, aborted       *prometheus.Desc
	commits, compactions, corrupt                    *prometheus.Desc
}

// NewCollector returns a collector of s's statistics.
func NewCollector(s *Spool) *Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("osprey_sensor_spool_"+name, help, nil, nil)
	}
	return &Collector{
		s:           s,
		messages:    d("messages", "Messages in the spool, waiting for their upload."),
		bytes:       d("bytes", "Bytes of the messages in the spool (records, header and footer included)."),
		diskBytes:   d("disk_bytes", "Bytes the spool's segments and spilled messages take on disk, removed records not yet deleted included."),
		segments:    d("segments", "Segment files of the spool."),
		tombstones:  d("tombstones", "Removed POP3 messages whose UIDL the spool remembers."),
		puts:        d("puts_total", "Messages spooled since the spool was opened."),
		removes:     d("removes_total", "Messages removed (uploaded) since the spool was opened."),
		failures:    d("put_failures_total", "Puts that failed on an I/O error."),
		rejected:    d("put_rejected_total", "Puts refused because the spool or the disk was full."),
		aborted:     d("put_aborted_total", "Puts whose body or context failed (nothing kept)."),
		commits:     d("commits_total", "Group commits (one fdatasync each); puts_total / commits_total is the batch size."),
		compactions: d("compactions_total", "Segments compacted."),
		corrupt:     d("corrupt_records_total", "Damaged records quarantined at open."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.messages, c.bytes, c.diskBytes, c.segments, c.tombstones,
		c.puts, c.removes, c.failures, c.rejected, c.aborted, c.commits, c.compactions, c.corrupt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.messages, float64(st.Messages))
	gauge(c.bytes, float64(st.Bytes))
	gauge(c.diskBytes, float64(st.DiskBytes))
	gauge(c.segments, float64(st.Segments))
	gauge(c.tombstones, float64(st.Tombstones))
	counter(c.puts, st.Puts)
	counter(c.removes, st.Removes)
	counter(c.failures, st.Failures)
	counter(c.rejected, st.Rejected)
	counter(c.aborted, st.Aborted)
	counter(c.commits, st.Commits)
	counter(c.compactions, st.Compactions)
	counter(c.corrupt, st.Corrupt)
}
