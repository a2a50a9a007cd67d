// Package tokenizer is a BERT WordPiece tokenizer that produces exactly the tokens of Hugging Face's
// BertTokenizerFast (tokenizers' BertNormalizer, BertPreTokenizer, WordPiece and BertProcessing),
// with byte offsets into the original text.
//
// A WordPiece is immutable once built and safe for concurrent use; per-call scratch memory comes
// from a pool, so tokenizing does not allocate beyond the returned slices.
//
// Exactness is tested against Hugging Face's own tokenizers (the Node binding in scripts/tokref):
// testdata/golden.json holds its encodings of the benchmark corpus and edge cases, and when the
// reference is installed the tests also run it live on every code point and on random text.
// Where HF's Unicode tables differ from Go's (older categories, newer lower-casing), the generated
// unicode_tables.go corrects Go's; regenerate it and the goldens with
// go test ./tokenizer -run 'TestUnicodeTables|TestGolden' -update.
package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
)

// Options are the tokenizer settings of a BERT model (the fields of its tokenizer_config.json).
type Options struct {
	Lowercase    bool  // do_lower_case
	StripAccents *bool // nil: follows Lowercase
	ChineseChars bool  // tokenize_chinese_chars
	MaxTokens    int   // truncation length including special tokens; 0 = none
}

// Encoding is the model input for one text or one query/document pair.
type Encoding struct {
	IDs       []int32
	TypeIDs   []int32
	Offsets   [][2]int // byte offsets [start, end) into the text the token came from; [0,0] for specials
	Truncated bool
}

// Specials are the ids of the special tokens; -1 where the vocabulary has none.
type Specials struct{ CLS, SEP, UNK, PAD, MASK int32 }

// maxWordRunes is HF's max_input_chars_per_word: longer words become [UNK].
const maxWordRunes = 100

// continuationPrefix marks a piece that continues a word in Hugging Face's vocab.txt form.
const continuationPrefix = "##"

// ggufWordPrefix marks a word-initial piece in llama.cpp's GGUF form of a BERT vocabulary.
const ggufWordPrefix = "\u2581"

// WordPiece tokenizes text with a BERT vocabulary. Build it with New or FromGGUF.
type WordPiece struct {
	*vocabulary
	opts         Options
	stripAccents bool
}

// vocabulary is the part shared by copies made with WithMaxTokens.
type vocabulary struct {
	tokens     stringList  // HF form, index = id
	initial    *pieceIndex // word-initial pieces, including bracketed control tokens
	continuing *pieceIndex // continuation pieces, keyed without the "##"
	specials   Specials
	// inText are the special tokens recognised when written in the input text, as HF's added
	// tokens are: matched on the original text before normalization, longest first.
	inText       []specialToken
	specialFirst [256]bool // first bytes of inText
	pool         sync.Pool // *scratch
}

type specialToken struct {
	text string
	id   int32
}

// New builds a tokenizer from a vocabulary whose index is the token id, in Hugging Face's vocab.txt
// form ("##" continuations) or llama.cpp's GGUF form (U+2581 before word-initial pieces, bracketed
// control tokens unchanged, continuations bare). The vocabulary must hold [CLS], [SEP] and [UNK].
func New(vocab []string, opts Options) (*WordPiece, error) {
	hf, err := hfForm(vocab)
	if err != nil {
		return nil, err
	}
	return build(hf, bertSpecials(hf), opts)
}

// bertSpecials finds BERT's special tokens by their usual spellings in a Hugging Face-form
// vocabulary (the last occurrence of each, as Hugging Face's vocabulary loading keeps).
func bertSpecials(hf []string) Specials {
	return Specials{
		CLS:  lookupLast(hf, "[CLS]"),
		SEP:  lookupLast(hf, "[SEP]"),
		UNK:  lookupLast(hf, "[UNK]"),
		PAD:  lookupLast(hf, "[PAD]"),
		MASK: lookupLast(hf, "[MASK]"),
	}
}

// lookupLast returns the id of tok, the last one when it appears twice (as HF's vocab loading
// does), or -1.
func lookupLast(tokens []string, tok string) int32 {
	for i := len(tokens) - 1; i >= 0; i-- {
		if tokens[i] == tok {
			return int32(i)
		}
	}
	return -1
}

// hfForm returns the vocabulary in HF form, converting it from GGUF form when any entry carries the
// U+2581 word prefix.
func hfForm(vocab []string) ([]string, error) {
	if len(vocab) == 0 {
		return nil, errors.New("tokenizer: empty vocabulary")
	}
	if len(vocab) > math.MaxInt32 {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d entries is too large", len(vocab))
	}
	gguf := false
	for _, t := range vocab {
		if strings.HasPrefix(t, ggufWordPrefix) {
			gguf = true
			break
		}
	}
	out := make([]string, len(vocab))
	for i, t := range vocab {
		switch {
		case !gguf:
			out[i] = t
		case isBracketed(t):
			out[i] = t
		case strings.HasPrefix(t, ggufWordPrefix):
			out[i] = t[len(ggufWordPrefix):]
		default:
			out[i] = continuationPrefix + t
		}
	}
	return out, nil
}

// isBracketed reports whether t is a control token like [CLS] or [unused0], which llama.cpp's
// conversion leaves unchanged.
func isBracketed(t string) bool {
	return len(t) >= 2 && t[0] == '[' && t[len(t)-1] == ']'
}

func build(hf []string, sp Specials, opts Options) (*WordPiece, error) {
	n := int32(len(hf))
	for _, s := range []struct {
		name     string
		id       int32
		required bool
	}{{"[CLS]", sp.CLS, true}, {"[SEP]", sp.SEP, true}, {"[UNK]", sp.UNK, true}, {"[PAD]", sp.PAD, false}, {"[MASK]", sp.MASK, false}} {
		if s.id < 0 && s.required {
			return nil, fmt.Errorf("tokenizer: vocabulary has no %s token", s.name)
		}
		if s.id < -1 || s.id >= n {
			return nil, fmt.Errorf("tokenizer: %s id %d outside the vocabulary of %d", s.name, s.id, n)
		}
	}
	if opts.MaxTokens < 0 || (opts.MaxTokens > 0 && opts.MaxTokens < 3) {
		return nil, fmt.Errorf("tokenizer: MaxTokens %d: want 0 (no limit) or at least 3", opts.MaxTokens)
	}
	bmpInfoOnce.Do(initRuneInfo)
	tokens, err := newStringList(hf)
	if err != nil {
		return nil, err
	}
	v := &vocabulary{tokens: tokens, specials: sp}
	var initial, continuing []int32
	for i, t := range hf {
		if len(t) > len(continuationPrefix) && strings.HasPrefix(t, continuationPrefix) {
			continuing = append(continuing, int32(i))
		} else {
			initial = append(initial, int32(i))
		}
	}
	v.initial = newPieceIndex(&v.tokens, 0, initial)
	v.continuing = newPieceIndex(&v.tokens, len(continuationPrefix), continuing)
	seen := map[int32]bool{}
	for _, id := range []int32{sp.PAD, sp.UNK, sp.CLS, sp.SEP, sp.MASK} {
		// The text from v.tokens, not hf: a string of hf may share memory with all of the GGUF
		// file's vocabulary strings and would keep them alive.
		if id >= 0 && !seen[id] && hf[id] != "" {
			seen[id] = true
			v.inText = append(v.inText, specialToken{v.tokens.at(int(id)), id})
		}
	}
	// Longest first, so the first match at a position is the longest (HF matches leftmost-longest).
	for i := 1; i < len(v.inText); i++ {
		for j := i; j > 0 && len(v.inText[j].text) > len(v.inText[j-1].text); j-- {
			v.inText[j], v.inText[j-1] = v.inText[j-1], v.inText[j]
		}
	}
	for _, t := range v.inText {
		v.specialFirst[t.text[0]] = true
	}
	v.pool.New = func() any { return new(scratch) }
	w := &WordPiece{vocabulary: v}
	w.setOptions(opts)
	return w, nil
}

func (w *WordPiece) setOptions(opts Options) {
	if opts.StripAccents != nil {
		b := *opts.StripAccents
		opts.StripAccents = &b
		w.stripAccents = b
	} else {
		w.stripAccents = opts.Lowercase
	}
	w.opts = opts
}

// VocabSize is the number of ids.
func (w *WordPiece) VocabSize() int { return w.tokens.len() }

// Token returns the token of id in HF form ("##ing" for continuations).
func (w *WordPiece) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= w.tokens.len() {
		return "", false
	}
	return w.tokens.at(int(id)), true
}

// ID returns the id of a token in HF form.
func (w *WordPiece) ID(token string) (int32, bool) {
	if rest, ok := strings.CutPrefix(token, continuationPrefix); ok && rest != "" {
		return lookup(w.continuing, rest)
	}
	return lookup(w.initial, token)
}

// Specials returns the special token ids.
func (w *WordPiece) Specials() Specials { return w.specials }

// Options returns the settings in force; StripAccents is always set.
func (w *WordPiece) Options() Options {
	o := w.opts
	b := w.stripAccents
	o.StripAccents = &b
	return o
}

// WithMaxTokens returns a copy sharing the vocabulary that truncates to n tokens (0: no limit;
// negative counts as 0, and 1 or 2 as 3, the least a pair needs).
func (w *WordPiece) WithMaxTokens(n int) *WordPiece {
	c := *w
	switch {
	case n <= 0:
		n = 0
	case n < 3:
		n = 3
	}
	c.opts.MaxTokens = n
	return &c
}

// Tokenize returns the ids and byte offsets of text's tokens, without special tokens or truncation.
func (w *WordPiece) Tokenize(text string) (ids []int32, offsets [][2]int) {
	s := w.getScratch()
	defer w.putScratch(s)
	w.tokenize(s, text)
	ids = make([]int32, len(s.ids))
	offsets = make([][2]int, len(s.offs))
	copy(ids, s.ids)
	copy(offsets, s.offs)
	return ids, offsets
}

// Encode returns [CLS] text [SEP], truncated to MaxTokens with [SEP] kept last.
func (w *WordPiece) Encode(text string) Encoding {
	s := w.getScratch()
	defer w.putScratch(s)
	w.tokenize(s, text)
	n := len(s.ids)
	var enc Encoding
	if limit := w.opts.MaxTokens; limit > 0 && n+2 > limit {
		n = limit - 2
		enc.Truncated = true
	}
	enc.IDs = make([]int32, 0, n+2)
	enc.Offsets = make([][2]int, 0, n+2)
	enc.IDs = append(enc.IDs, w.specials.CLS)
	enc.IDs = append(enc.IDs, s.ids[:n]...)
	enc.IDs = append(enc.IDs, w.specials.SEP)
	enc.Offsets = append(enc.Offsets, [2]int{})
	enc.Offsets = append(enc.Offsets, s.offs[:n]...)
	enc.Offsets = append(enc.Offsets, [2]int{})
	enc.TypeIDs = make([]int32, n+2)
	return enc
}

// EncodePair returns [CLS] query [SEP] document [SEP] for a cross-encoder, type ids 0 for the
// first part and 1 for document [SEP]. Over MaxTokens, the document is cut first; only when it is
// empty is the query cut too.
func (w *WordPiece) EncodePair(query, document string) Encoding {
	s := w.getScratch()
	defer w.putScratch(s)
	w.tokenize(s, query)
	nq := len(s.ids)
	w.tokenizeAppend(s, document)
	nd := len(s.ids) - nq
	q, qo := s.ids[:nq], s.offs[:nq]
	d, do := s.ids[nq:], s.offs[nq:]
	var enc Encoding
	if limit := w.opts.MaxTokens; limit > 0 && nq+nd+3 > limit {
		enc.Truncated = true
		excess := nq + nd + 3 - limit
		if excess <= nd {
			nd -= excess
		} else {
			nd = 0
			nq = limit - 3
		}
	}
	total := nq + nd + 3
	enc.IDs = make([]int32, 0, total)
	enc.Offsets = make([][2]int, 0, total)
	enc.TypeIDs = make([]int32, total)
	enc.IDs = append(enc.IDs, w.specials.CLS)
	enc.IDs = append(enc.IDs, q[:nq]...)
	enc.IDs = append(enc.IDs, w.specials.SEP)
	enc.IDs = append(enc.IDs, d[:nd]...)
	enc.IDs = append(enc.IDs, w.specials.SEP)
	enc.Offsets = append(enc.Offsets, [2]int{})
	enc.Offsets = append(enc.Offsets, qo[:nq]...)
	enc.Offsets = append(enc.Offsets, [2]int{})
	enc.Offsets = append(enc.Offsets, do[:nd]...)
	enc.Offsets = append(enc.Offsets, [2]int{})
	for i := nq + 2; i < total; i++ {
		enc.TypeIDs[i] = 1
	}
	return enc
}
