package members

// SkipLeave makes Run stop as a crash would: no delete of its row, which then expires.
func (m *Members) SkipLeave() { m.skipLeave.Store(true) }

// OwnedBy is what Owned computes, for a given view.
func OwnedBy(self string, symbols, live []string) []string { return owned(self, symbols, live) }
