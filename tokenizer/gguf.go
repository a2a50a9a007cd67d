package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"unicode"

	"github.com/embedd-dev/embedd/gguf"
)

// llama.cpp's GGUF metadata keys for a BERT vocabulary ("seperator" is spelled so in the format).
const (
	keyModel  = "tokenizer.ggml.model"
	keyTokens = "tokenizer.ggml.tokens"
	keyCLS    = "tokenizer.ggml.cls_token_id"
	keySEP    = "tokenizer.ggml.seperator_token_id"
	keyUNK    = "tokenizer.ggml.unknown_token_id"
	keyPAD    = "tokenizer.ggml.padding_token_id"
	keyMASK   = "tokenizer.ggml.mask_token_id"
)

// FromGGUF builds the tokenizer of a BERT GGUF file, truncating to maxTokens (0: no limit). GGUF
// stores no do_lower_case, so the vocabulary decides (see DetectUncased); Chinese characters are
// split as in HF's default.
func FromGGUF(f *gguf.File, maxTokens int) (*WordPiece, error) {
	return FromGGUFOptions(f, Options{MaxTokens: maxTokens, ChineseChars: true}, true)
}

// FromGGUFOptions builds the tokenizer of a BERT GGUF file with opts; when detectCase is set,
// opts.Lowercase is replaced by what DetectUncased finds.
func FromGGUFOptions(f *gguf.File, opts Options, detectCase bool) (*WordPiece, error) {
	if f == nil {
		return nil, errors.New("tokenizer: nil GGUF file")
	}
	if m, ok := f.String(keyModel); ok && m != "bert" {
		return nil, fmt.Errorf("tokenizer: GGUF tokenizer model %q is not a BERT WordPiece (want \"bert\")", m)
	}
	vocab, ok := f.Strings(keyTokens)
	if !ok {
		return nil, fmt.Errorf("tokenizer: GGUF has no string array %s", keyTokens)
	}
	hf, err := hfForm(vocab)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: GGUF vocabulary: %w", err)
	}
	sp := bertSpecials(hf)
	for _, k := range []struct {
		key string
		id  *int32
	}{{keyCLS, &sp.CLS}, {keySEP, &sp.SEP}, {keyUNK, &sp.UNK}, {keyPAD, &sp.PAD}, {keyMASK, &sp.MASK}} {
		if _, present := f.Lookup(k.key); !present {
			continue
		}
		v, ok := f.Uint(k.key)
		if !ok || v > math.MaxInt32 || v >= uint64(len(hf)) {
			return nil, fmt.Errorf("tokenizer: GGUF %s is not an id below the vocabulary size %d", k.key, len(hf))
		}
		*k.id = int32(v)
	}
	if detectCase {
		opts.Lowercase = DetectUncased(hf)
	}
	w, err := build(hf, sp, opts)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: GGUF vocabulary: %w", err)
	}
	return w, nil
}

// DetectUncased reports whether a vocabulary (either form) belongs to an uncased model: no entry
// except bracketed control tokens holds a character that lower-casing changes. (An uncased
// vocabulary may hold upper-case symbols without a lower case, such as U+211D.)
func DetectUncased(vocab []string) bool {
	for _, t := range vocab {
		if isBracketed(t) {
			continue
		}
		for _, r := range t {
			if unicode.ToLower(r) != r {
				return false
			}
		}
	}
	return true
}
