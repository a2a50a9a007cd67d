package gguf

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

// hugePage is the size of an x86-64 and arm64 (4 KB granule) transparent huge page.
const hugePage = 2 << 20

// maxReadBytes bounds the files read into memory: the loader copies every tensor, so a file read
// this way is briefly in memory twice, which for a large model costs more than the faults it
// saves (a mapping's pages are page cache, which the kernel can drop).
var maxReadBytes int64 = 1 << 30 // a variable for tests

// thpModeFile says whether transparent huge pages may be used ("[never]" when they may not).
const thpModeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// thpAvailable reports whether memory advised for transparent huge pages can get them, and the
// mode file's text.
func thpAvailable() (bool, string) {
	mode, err := os.ReadFile(thpModeFile)
	return err == nil && !strings.Contains(string(mode), "[never]"), strings.TrimSpace(string(mode))
}

// readFile reads the file into an anonymous mapping aligned to and advised for huge pages. Where
// the system has no transparent huge pages it maps the file instead (fresh 4 KB anonymous pages
// would each cost a fault on top of the copy), and so it does for files over maxReadBytes and for
// empty ones (mapOpen's empty image gets Parse's clear error). The returned function releases the
// memory.
func readFile(path string) ([]byte, func() error, error) {
	if ok, _ := thpAvailable(); !ok {
		return mapFile(path)
	}
	fd, size, err := openRegular(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	if size == 0 || size > maxReadBytes {
		return mapOpen(fd, size, path)
	}
	// Two huge pages more than the file: the data starts on a huge-page boundary and the advised
	// span ends on one.
	raw, err := syscall.Mmap(-1, 0, int(size)+2*hugePage, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return mapOpen(fd, size, path)
	}
	release := func() error { return syscall.Munmap(raw) }
	skip := int((hugePage - uintptr(unsafe.Pointer(unsafe.SliceData(raw)))%hugePage) % hugePage)
	span := raw[skip : skip+(int(size)+hugePage-1)/hugePage*hugePage]
	_ = syscall.Madvise(span, syscall.MADV_HUGEPAGE) // advice only: without it the pages are 4 KB
	data := span[:size]
	if _, err := io.ReadFull(fd, data); err != nil {
		_ = release()
		return nil, nil, fmt.Errorf("gguf: %s: read: %w", path, err)
	}
	return data, release, nil
}
