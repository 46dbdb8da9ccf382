package objects

// BatchMax is how many objects b names at a time (fewer than BatchObjects
// where the process may open few files).
func BatchMax(b *Batch) int { return b.max }
