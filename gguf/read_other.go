//go:build !linux

package gguf

// readFile maps the file (or reads it where mmap is not wired up): huge-page reads are Linux-only.
func readFile(path string) ([]byte, func() error, error) { return mapFile(path) }
