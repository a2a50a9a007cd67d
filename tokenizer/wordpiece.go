package tokenizer

import "unicode/utf8"

// endWord runs WordPiece on the word in s (if any), appends its tokens and starts a new word.
func (w *WordPiece) endWord(s *scratch) {
	if len(s.word) == 0 {
		return
	}
	first := len(s.ids)
	if s.runes > maxWordRunes || !w.wordPiece(s) {
		s.ids = append(s.ids[:first], w.specials.UNK)
		s.offs = append(s.offs[:first], [2]int{s.spanStart[0], s.lastEnd})
	}
	s.resetWord()
}

// wordPiece appends the pieces of the word in s, splitting it greedily into the longest vocabulary
// pieces from left to right, as HF's WordPiece model does. It reports false when some rest of the
// word matches no piece (the word is then [UNK], and the caller drops what was appended). Lookups
// take the word's bytes as they are, without allocating.
func (w *WordPiece) wordPiece(s *scratch) bool {
	word := s.word
	for start := 0; start < len(word); {
		dict := w.initial
		if start > 0 {
			dict = w.continuing
		}
		end := min(len(word), start+dict.maxLen)
		for end < len(word) && !utf8.RuneStart(word[end]) {
			end-- // the longest key ends inside a character: cut to its start
		}
		id, found := int32(0), false
		for end > start {
			if id, found = lookup(dict, word[start:end]); found {
				break
			}
			end--
			for end > start && !utf8.RuneStart(word[end]) {
				end--
			}
		}
		if !found {
			return false
		}
		s.ids = append(s.ids, id)
		s.offs = append(s.offs, [2]int{s.spanStart[start], s.spanEnd[end-1]})
		start = end
	}
	return true
}
