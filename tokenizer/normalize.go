package tokenizer

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// scratch is the per-call working memory of tokenize, reused through the pool.
type scratch struct {
	ids  []int32
	offs [][2]int
	// The word being built: its normalized UTF-8 bytes, and for each byte the original byte span
	// of the character it came from.
	word      []byte
	spanStart []int
	spanEnd   []int
	runes     int    // characters in word, counting those past maxWordRunes that are not stored
	lastEnd   int    // original end of the word's last character
	stripped  []rune // one character after accent stripping
}

// maxPooledTokens bounds the buffers kept for reuse, so one huge input does not pin its memory.
const maxPooledTokens = 1 << 16

func (w *WordPiece) putScratch(s *scratch) {
	if cap(s.ids) <= maxPooledTokens {
		w.pool.Put(s)
	}
}

func (w *WordPiece) getScratch() *scratch {
	s := w.pool.Get().(*scratch)
	s.ids = s.ids[:0]
	s.offs = s.offs[:0]
	s.resetWord()
	return s
}

func (s *scratch) resetWord() {
	s.word = s.word[:0]
	s.spanStart = s.spanStart[:0]
	s.spanEnd = s.spanEnd[:0]
	s.runes = 0
}

// charClass is how HF's BertNormalizer and BertPreTokenizer treat a character.
type charClass uint8

const (
	classWord  charClass = iota // part of a word
	classDrop                   // removed by cleaning (controls, U+0000, U+FFFD)
	classSpace                  // whitespace: separates words
	classPunct                  // punctuation: a word of its own
	classUpper                  // ASCII upper-case letter: part of a word, lower-cased when asked
)

var asciiClass = func() (t [utf8.RuneSelf]charClass) {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case c == '\t' || c == '\n' || c == '\r' || c == ' ':
			t[c] = classSpace
		case c < 32 || c == 127:
			t[c] = classDrop
		case c >= 33 && c <= 47, c >= 58 && c <= 64, c >= 91 && c <= 96, c >= 123 && c <= 126:
			t[c] = classPunct
		case c >= 'A' && c <= 'Z':
			t[c] = classUpper
		default:
			t[c] = classWord
		}
	}
	return t
}()

// classOf classifies r as HF does: Go's Unicode tables, corrected where HF's differ.
func classOf(r rune) charClass {
	if r < utf8.RuneSelf {
		if c := asciiClass[r]; c != classUpper {
			return c
		}
		return classWord
	}
	if hasOverride(r) {
		if c, ok := hfClassOverride[r]; ok {
			return c
		}
	}
	return baseClass(r)
}

// baseClass classifies r with Go's Unicode tables by HF's rules: cleaning removes U+0000, U+FFFD
// and Cc, Cf, Co (surrogates cannot occur) except \t \n \r; whitespace is Rust's char::is_whitespace
// (the White_Space property); punctuation is ASCII punctuation (including $+<=>^`|~) or Unicode P*.
func baseClass(r rune) charClass {
	switch {
	case r < utf8.RuneSelf:
		if c := asciiClass[r]; c != classUpper {
			return c
		}
		return classWord
	case r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co):
		return classDrop
	case unicode.Is(unicode.White_Space, r):
		return classSpace
	case unicode.IsPunct(r):
		return classPunct
	}
	return classWord
}

// baseStrip appends to dst what HF's accent stripping (NFD, then removing Mn) makes of r, whose
// UTF-8 is orig, using Go's tables. The canonical decomposition of one character is already fully
// decomposed and ordered, so it is read from the tables without running a normalizer.
func baseStrip(dst []rune, r rune, orig string) []rune {
	if r < 0xC0 { // nothing below U+00C0 decomposes canonically
		return append(dst, r)
	}
	if r >= hangulBase && r < hangulBase+hangulCount {
		// Hangul syllables decompose by arithmetic into two or three jamo, none of them Mn.
		i := r - hangulBase
		dst = append(dst, jamoLBase+i/(jamoVCount*jamoTCount), jamoVBase+i%(jamoVCount*jamoTCount)/jamoTCount)
		if t := i % jamoTCount; t != 0 {
			dst = append(dst, jamoTBase+t)
		}
		return dst
	}
	d := norm.NFD.PropertiesString(orig).Decomposition()
	if len(d) == 0 {
		if !unicode.Is(unicode.Mn, r) {
			dst = append(dst, r)
		}
		return dst
	}
	for _, x := range string(d) {
		if !unicode.Is(unicode.Mn, x) {
			dst = append(dst, x)
		}
	}
	return dst
}

// Hangul syllable decomposition constants (Unicode chapter 3.12).
const (
	hangulBase  = 0xAC00
	hangulCount = 11172
	jamoLBase   = 0x1100
	jamoVBase   = 0x1161
	jamoTBase   = 0x11A7
	jamoVCount  = 21
	jamoTCount  = 28
)

// baseLower is Rust's char::to_lowercase with Go's tables, less U+0130 (see the overrides).
func baseLower(r rune) rune { return unicode.ToLower(r) }

// overrideBlocks marks the 256-code-point blocks holding an override, so most characters skip the
// map lookups.
var overrideBlocks = func() (b [(unicode.MaxRune + 1) >> 8]bool) {
	for r := range hfClassOverride {
		b[r>>8] = true
	}
	for r := range hfStripOverride {
		b[r>>8] = true
	}
	for r := range hfLowerOverride {
		b[r>>8] = true
	}
	return b
}()

func hasOverride(r rune) bool { return r >= 0 && r <= unicode.MaxRune && overrideBlocks[r>>8] }

// isCJK reports the CJK ideograph blocks HF surrounds with spaces when tokenize_chinese_chars is set.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// tokenize replaces s.ids and s.offs with the tokens of text.
func (w *WordPiece) tokenize(s *scratch, text string) {
	s.ids = s.ids[:0]
	s.offs = s.offs[:0]
	w.tokenizeAppend(s, text)
}

// tokenizeAppend appends the tokens of text to s.ids and s.offs. It runs HF's pipeline in one pass:
// special tokens written in the text are split out first, then each character is cleaned,
// CJK-isolated, accent-stripped and lower-cased, and the result is split into words on whitespace
// and punctuation; each word goes through WordPiece as soon as it ends.
func (w *WordPiece) tokenizeAppend(s *scratch, text string) {
	s.resetWord()
	lower := w.opts.Lowercase
	for i := 0; i < len(text); {
		c := text[i]
		if w.specialFirst[c] {
			if tok, ok := w.specialAt(text[i:]); ok {
				w.endWord(s)
				s.ids = append(s.ids, tok.id)
				s.offs = append(s.offs, [2]int{i, i + len(tok.text)})
				i += len(tok.text)
				continue
			}
		}
		if c < utf8.RuneSelf {
			switch asciiClass[c] {
			case classWord:
				s.addByte(c, i, i+1)
			case classUpper:
				if lower {
					c += 'a' - 'A'
				}
				s.addByte(c, i, i+1)
			case classSpace:
				w.endWord(s)
			case classPunct:
				w.endWord(s)
				s.addByte(c, i, i+1)
				w.endWord(s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		start, end := i, i+size
		i = end
		info := infoOf(r)
		switch charClass(info & infoClassMask) {
		case classDrop:
			continue
		case classSpace:
			w.endWord(s)
			continue
		}
		cjk := w.opts.ChineseChars && isCJK(r)
		if cjk {
			w.endWord(s)
		}
		w.addNormalized(s, text[start:end], r, info, start, end)
		if cjk {
			w.endWord(s)
		}
	}
	w.endWord(s)
}

// specialAt returns the special token that text starts with, the longest if several do.
func (w *WordPiece) specialAt(text string) (specialToken, bool) {
	for _, t := range w.inText {
		if strings.HasPrefix(text, t.text) {
			return t, true
		}
	}
	return specialToken{}, false
}

// addByte appends one ASCII byte of a word. Past maxWordRunes characters the word can only be
// [UNK], so only its count and end are kept: a huge unbroken input costs no memory.
func (s *scratch) addByte(c byte, start, end int) {
	s.runes++
	s.lastEnd = end
	if s.runes > maxWordRunes {
		return
	}
	s.word = append(s.word, c)
	s.spanStart = append(s.spanStart, start)
	s.spanEnd = append(s.spanEnd, end)
}

// addRune appends one normalized character of a word, coming from the original span [start, end).
func (s *scratch) addRune(r rune, start, end int) {
	s.runes++
	s.lastEnd = end
	if s.runes > maxWordRunes {
		return
	}
	n := len(s.word)
	s.word = utf8.AppendRune(s.word, r)
	for j := n; j < len(s.word); j++ {
		s.spanStart = append(s.spanStart, start)
		s.spanEnd = append(s.spanEnd, end)
	}
}

// addNormalized strips accents from and lower-cases the non-ASCII character r (whose UTF-8 is
// orig, at [start, end) of the text) as HF does, in HF's order, and adds the result to the word,
// splitting off punctuation.
func (w *WordPiece) addNormalized(s *scratch, orig string, r rune, info runeInfo, start, end int) {
	if !w.stripAccents || info&infoStrips == 0 {
		w.addLowered(s, r, info, start, end)
		return
	}
	if hasOverride(r) {
		if st, ok := hfStripOverride[r]; ok {
			for _, x := range st {
				w.addLowered(s, x, infoOf(x), start, end)
			}
			return
		}
	}
	s.stripped = baseStrip(s.stripped[:0], r, orig)
	for _, x := range s.stripped {
		w.addLowered(s, x, infoOf(x), start, end)
	}
}

// addLowered lower-cases r when asked and adds it to the word, or as its own word if punctuation.
func (w *WordPiece) addLowered(s *scratch, r rune, info runeInfo, start, end int) {
	if !w.opts.Lowercase || info&infoLowers == 0 {
		w.addWordRune(s, r, charClass(info&infoClassMask), start, end)
		return
	}
	if hasOverride(r) {
		if lo, ok := hfLowerOverride[r]; ok {
			for _, x := range lo {
				w.addWordRune(s, x, classOf(x), start, end)
			}
			return
		}
	}
	r = baseLower(r)
	w.addWordRune(s, r, classOf(r), start, end)
}

func (w *WordPiece) addWordRune(s *scratch, r rune, class charClass, start, end int) {
	switch class {
	case classPunct:
		w.endWord(s)
		s.addRune(r, start, end)
		w.endWord(s)
	case classSpace:
		w.endWord(s)
	default:
		s.addRune(r, start, end)
	}
}

// runeInfo caches per character what the hot path needs: HF's class, and whether accent stripping
// or lower-casing may change the character.
type runeInfo uint8

const (
	infoClassMask runeInfo = 7
	infoStrips    runeInfo = 8  // accent stripping may change it
	infoLowers    runeInfo = 16 // lower-casing may change it
)

var (
	bmpInfoOnce sync.Once
	bmpInfo     *[0x10000]runeInfo // filled by initRuneInfo, which build calls
)

func initRuneInfo() {
	t := new([0x10000]runeInfo)
	for r := range rune(len(t)) {
		t[r] = computeInfo(r)
	}
	bmpInfo = t
}

func infoOf(r rune) runeInfo {
	if r >= 0 && r < 0x10000 {
		return bmpInfo[r]
	}
	return computeInfo(r)
}

func computeInfo(r rune) runeInfo {
	info := runeInfo(classOf(r))
	if hasOverride(r) {
		if _, ok := hfStripOverride[r]; ok {
			info |= infoStrips
		}
		if _, ok := hfLowerOverride[r]; ok {
			info |= infoLowers
		}
	}
	if r >= 0xC0 {
		var buf [utf8.UTFMax]byte
		if unicode.Is(unicode.Mn, r) || (r >= hangulBase && r < hangulBase+hangulCount) ||
			len(norm.NFD.Properties(utf8.AppendRune(buf[:0], r)).Decomposition()) > 0 {
			info |= infoStrips
		}
	}
	if baseLower(r) != r {
		info |= infoLowers
	}
	return info
}
