//go:build !(linux || darwin)

package gguf

import (
	"fmt"
	"os"
)

// mapFile reads the whole file into memory where mmap is not wired up.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("gguf: %w", err)
	}
	return data, nil, nil
}
