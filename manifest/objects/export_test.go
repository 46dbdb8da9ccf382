package objects

// BatchMax is how many objects b names at a time (fewer than BatchObjects
// where the process may open few files).
func BatchMax(b *Batch) int { return b.max }

// NewNamedBatch is a Batch that writes temporary names, as on a file
// system without unnamed files (NFS).
func NewNamedBatch(s *Store) *Batch {
	b := s.NewBatch()
	b.named, b.max = true, BatchObjects
	return b
}
