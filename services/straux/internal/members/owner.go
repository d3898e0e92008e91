package members

// Rendezvous (highest-random-weight) hashing: every member scores every symbol with a hash of
// (member, symbol) and the highest score holds the symbol. Each replica computes the same owner
// from the same live set, with no coordination beyond agreeing on the set, and a change of the set
// moves only the symbols the change must move: a new member takes about 1/n of the symbols (those
// it now scores highest on), a member that leaves hands only its own symbols to the others.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// hash is FNV-1a of s finished with splitmix64's mixer: FNV-1a alone barely changes its high bits
// between names that differ in their last byte, and HRW compares whole 64-bit scores.
func hash(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix(h)
}

// mix is splitmix64's finalizer, a bijection with full avalanche.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// score is member's weight for symbol, from their hashes: mixing the pair again makes the scores
// of one symbol under different members independent, which is all HRW needs. Each name is hashed
// once per call, not once per pair, so a universe costs one mix per (symbol, member).
func score(member, symbol uint64) uint64 { return mix(member ^ symbol) }

// Owner is the member of members that holds symbol: the highest score, ties (vanishingly rare)
// to the smaller name, so the answer depends only on the set, not on its order or duplicates.
// It is "" when members is empty. For many symbols at once, (*Members).Owned hashes each member
// once.
func Owner(symbol string, members []string) string {
	hs := hash(symbol)
	best, bestScore := "", uint64(0)
	for _, m := range members {
		s := score(hash(m), hs)
		if best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best
}

// owned returns the symbols of symbols that self holds among members, in their order.
func owned(self string, symbols, members []string) []string {
	if len(members) == 0 {
		return nil
	}
	hm := make([]uint64, len(members))
	for i, m := range members {
		hm[i] = hash(m)
	}
	var out []string
	for _, sym := range symbols {
		hs := hash(sym)
		best, bestScore := "", uint64(0)
		for i, m := range members {
			s := score(hm[i], hs)
			if best == "" || s > bestScore || (s == bestScore && m < best) {
				best, bestScore = m, s
			}
		}
		if best == self {
			out = append(out, sym)
		}
	}
	return out
}
