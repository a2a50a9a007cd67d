//go:build !unix

package hub

// lockFile is a no-op where flock is unavailable: downloads are still serialized within one
// process, and the atomic rename keeps the cache consistent, but two processes may both download.
func lockFile(path string) (unlock func(), err error) { return func() {}, nil }
