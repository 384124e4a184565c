package spool

// Disk reports the free space of the spool's file system now and the floor
// below which the spool takes no mail (Options.MinFreeBytes), for the
// sensor's status.
func (s *Spool) Disk() (free, floor int64, err error) {
	free, err = freeBytes(s.dir)
	return free, s.minFree, err
}
