package hub

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// Limits on names, mirroring what the Hugging Face Hub accepts with some margin.
const (
	maxRepoPart     = 96
	maxFileLen      = 1024
	maxSegmentLen   = 255
	maxRevisionLen  = 256
	partialSuffix   = ".incomplete"
	lockSuffix      = ".lock"
	defaultRevision = "main"
)

var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateRepo checks a repository id: "owner/name" (or a bare legacy "name"), each part letters,
// digits and ._- starting with a letter or digit. "--" is refused because the cache directory
// spells "/" as "--", and ".." because it has no business in a path.
func ValidateRepo(repo string) error {
	if repo == "" {
		return errors.New("repository id is empty (want owner/name)")
	}
	parts := strings.Split(repo, "/")
	if len(parts) > 2 {
		return fmt.Errorf("repository id %q has more than one /, want owner/name", repo)
	}
	for _, p := range parts {
		if len(p) == 0 || len(p) > maxRepoPart || !repoPart.MatchString(p) {
			return fmt.Errorf("repository id %q: %q must be 1-%d letters, digits or ._- starting with a letter or digit", repo, p, maxRepoPart)
		}
		if strings.Contains(p, "--") || strings.Contains(p, "..") || strings.HasSuffix(p, ".") {
			return fmt.Errorf("repository id %q: %q must not contain \"--\" or \"..\" or end with \".\"", repo, p)
		}
	}
	return nil
}

// validatePathLike checks a relative, slash-separated name (a file in a repository, or a
// revision such as refs/pr/1): no absolute path, no empty, "." or ".." segment, no backslash and
// no control characters, so that it can never escape the cache directory.
func validatePathLike(what, name string, maxLen int) error {
	if name == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(name) > maxLen {
		return fmt.Errorf("%s is %d bytes long, the limit is %d", what, len(name), maxLen)
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return fmt.Errorf("%s %q must be relative", what, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '\\' || r == ':' {
			return fmt.Errorf("%s %q contains a forbidden character %q", what, name, r)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%s %q has an empty, \".\" or \"..\" path segment", what, name)
		}
		if len(seg) > maxSegmentLen {
			return fmt.Errorf("%s %q has a path segment longer than %d bytes", what, name, maxSegmentLen)
		}
	}
	return nil
}

// ValidateFile checks a file name inside a repository ("model.gguf" or "q8/model.gguf").
func ValidateFile(file string) error {
	if err := validatePathLike("file name", file, maxFileLen); err != nil {
		return err
	}
	if strings.HasSuffix(file, partialSuffix) || strings.HasSuffix(file, lockSuffix) {
		return fmt.Errorf("file name %q must not end in %s or %s (the cache's own files)", file, partialSuffix, lockSuffix)
	}
	return nil
}

// ValidateRevision checks a branch, tag or commit name ("main", "v1.0", "refs/pr/1", a sha).
func ValidateRevision(rev string) error {
	return validatePathLike("revision", rev, maxRevisionLen)
}

// NormalizeSHA256 validates a hex SHA-256 digest and returns it in lower case.
func NormalizeSHA256(h string) (string, error) {
	h = strings.ToLower(strings.TrimSpace(h))
	if len(h) != 64 {
		return "", fmt.Errorf("sha256 %q must be 64 hex digits", h)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", fmt.Errorf("sha256 %q must be 64 hex digits", h)
	}
	return h, nil
}

// Validate checks every field of a request and fills in the default revision.
func (r *Request) validate() error {
	if err := ValidateRepo(r.Repo); err != nil {
		return err
	}
	if err := ValidateFile(r.File); err != nil {
		return err
	}
	if r.Revision == "" {
		r.Revision = defaultRevision
	}
	if err := ValidateRevision(r.Revision); err != nil {
		return err
	}
	if r.SHA256 != "" {
		h, err := NormalizeSHA256(r.SHA256)
		if err != nil {
			return err
		}
		r.SHA256 = h
	}
	return nil
}

// escapeSegments URL-escapes each slash-separated segment of a name.
func escapeSegments(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// etagSHA256 returns the SHA-256 an ETag header carries for an LFS file (64 hex digits, possibly
// quoted or weak), or "" when it is some other kind of tag (a git blob sha1 for small files).
func etagSHA256(tag string) string {
	tag = strings.TrimSpace(tag)
	tag = strings.TrimPrefix(tag, "W/")
	tag = strings.Trim(tag, `"`)
	h, err := NormalizeSHA256(tag)
	if err != nil {
		return ""
	}
	return h
}
