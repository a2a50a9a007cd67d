//go:build linux || darwin

package gguf

import (
	"fmt"
	"math"
	"os"
	"syscall"
)

// openRegular opens path, which must be a regular file, and returns its size.
func openRegular(path string) (*os.File, int64, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("gguf: %w", err)
	}
	st, err := fd.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	if err != nil {
		fd.Close()
		return nil, 0, fmt.Errorf("gguf: %w", err)
	}
	return fd, st.Size(), nil
}

// mapFile maps the whole file read-only. The returned function unmaps it.
func mapFile(path string) ([]byte, func() error, error) {
	fd, size, err := openRegular(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close() // the mapping stays valid after the descriptor closes
	return mapOpen(fd, size, path)
}

// mapOpen maps size bytes of the open regular file fd (named path in errors) read-only.
func mapOpen(fd *os.File, size int64, path string) ([]byte, func() error, error) {
	if size == 0 {
		// mmap refuses zero-length mappings; an empty image still gets Parse's clear error.
		return []byte{}, nil, nil
	}
	if size < 0 || uint64(size) > uint64(math.MaxInt) {
		return nil, nil, fmt.Errorf("gguf: %s: size %d cannot be mapped", path, size)
	}
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %s: mmap: %w", path, err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
