module github.com/squirro-bcp/bcp/transfer

go 1.26.0

require github.com/squirro-bcp/bcp/manifest v0.0.0

replace github.com/squirro-bcp/bcp/manifest => ../manifest

require github.com/squirro-bcp/bcp/internal v0.0.0

replace github.com/squirro-bcp/bcp/internal => ../internal
