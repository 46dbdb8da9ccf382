package remote

// DirNames is a directory and names in it to look up (StatMany): each
// name one component, not "", "." or "..".
type DirNames struct {
	Dir   string
	Names []string
}
