package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/embedd-dev/embedd/gguf"
)

// tinyVocab is a hand-made HF-form vocabulary for the hand-written expectations below.
var tinyVocab = []string{
	"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", // 0-4
	"hello", "world", "un", "##want", "##ed", // 5-9
	",", ".", "!", "cafe", "我", // 10-14
	"爱", "a", "##b", "runn", "##ing", // 15-19
	"##s", "Hello", "é", "$", "i", // 20-24
}

func tiny(t *testing.T, opts Options) *WordPiece {
	t.Helper()
	w, err := New(tinyVocab, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func boolPtr(b bool) *bool { return &b }

func TestTokenizeHandWritten(t *testing.T) {
	uncased := Options{Lowercase: true, ChineseChars: true}
	cases := []struct {
		name string
		opts Options
		text string
		ids  []int32
		offs [][2]int
	}{
		{"words", uncased, "hello world", []int32{5, 6}, [][2]int{{0, 5}, {6, 11}}},
		{"case and punctuation", uncased, "Hello, World!", []int32{5, 10, 6, 12}, [][2]int{{0, 5}, {5, 6}, {7, 12}, {12, 13}}},
		{"continuations", uncased, "unwanted", []int32{7, 8, 9}, [][2]int{{0, 2}, {2, 6}, {6, 8}}},
		{"three pieces", uncased, "runnings", []int32{18, 19, 20}, [][2]int{{0, 4}, {4, 7}, {7, 8}}},
		{"accent stripped, offsets over é", uncased, "Café", []int32{13}, [][2]int{{0, 5}}},
		{"combining mark dropped", uncased, "cafe\u0301", []int32{13}, [][2]int{{0, 4}}},
		{"CJK split", uncased, "我爱", []int32{14, 15}, [][2]int{{0, 3}, {3, 6}}},
		{"no CJK split", Options{Lowercase: true}, "我爱", []int32{1}, [][2]int{{0, 6}}},
		{"unmatched rest is UNK", uncased, "abc", []int32{1}, [][2]int{{0, 3}}},
		{"control removed joins words", uncased, "a\x00b", []int32{16, 17}, [][2]int{{0, 1}, {2, 3}}},
		{"zero width space removed", uncased, "a\u200bb", []int32{16, 17}, [][2]int{{0, 1}, {4, 5}}},
		{"invalid UTF-8 byte removed", uncased, "hel\xfflo", []int32{5}, [][2]int{{0, 6}}},
		{"no-break space separates", uncased, "hello\u00a0world", []int32{5, 6}, [][2]int{{0, 5}, {7, 12}}},
		{"ideographic space separates", uncased, "hello\u3000world", []int32{5, 6}, [][2]int{{0, 5}, {8, 13}}},
		{"ASCII symbol is punctuation", uncased, "$hello", []int32{23, 5}, [][2]int{{0, 1}, {1, 6}}},
		{"special token in text", uncased, "hello[MASK]world", []int32{5, 4, 6}, [][2]int{{0, 5}, {5, 11}, {11, 16}}},
		{"special token is case-sensitive", uncased, "[mask]", []int32{1, 1, 1}, [][2]int{{0, 1}, {1, 5}, {5, 6}}},
		{"empty", uncased, "", []int32{}, [][2]int{}},
		{"only whitespace and controls", uncased, " \t\n\r\x01\u2028 ", []int32{}, [][2]int{}},
		{"100 characters is a word", uncased, "a" + strings.Repeat("b", 99), append([]int32{16}, repeatID(17, 99)...), pieceOffsets(100)},
		{"101 characters is UNK", uncased, strings.Repeat("a", 101), []int32{1}, [][2]int{{0, 101}}},
		{"huge unbroken word is one UNK", uncased, "x " + strings.Repeat("é", 50000) + " a", []int32{1, 1, 16}, [][2]int{{0, 1}, {2, 100002}, {100003, 100004}}},
		{"dotted capital I", uncased, "İ", []int32{24}, [][2]int{{0, 2}}},
		{"cased keeps case", Options{ChineseChars: true}, "Hello hello", []int32{21, 5}, [][2]int{{0, 5}, {6, 11}}},
		{"cased keeps accents", Options{ChineseChars: true}, "é", []int32{22}, [][2]int{{0, 2}}},
		{"lower-case, keep accents", Options{Lowercase: true, StripAccents: boolPtr(false)}, "É", []int32{22}, [][2]int{{0, 2}}},
		{"strip accents without lower-casing", Options{StripAccents: boolPtr(true)}, "Cafés", []int32{1}, [][2]int{{0, 6}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, offs := tiny(t, c.opts).Tokenize(c.text)
			if !reflect.DeepEqual(ids, c.ids) || !reflect.DeepEqual(offs, c.offs) {
				t.Errorf("Tokenize(%q) = %v %v, want %v %v", c.text, ids, offs, c.ids, c.offs)
			}
		})
	}
}

func repeatID(id int32, n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = id
	}
	return out
}

// pieceOffsets are the offsets of n one-byte pieces.
func pieceOffsets(n int) [][2]int {
	out := make([][2]int, n)
	for i := range out {
		out[i] = [2]int{i, i + 1}
	}
	return out
}

func TestEncodeAndPairs(t *testing.T) {
	w := tiny(t, Options{Lowercase: true, ChineseChars: true})
	cases := []struct {
		name      string
		max       int
		query     string
		doc       *string
		ids       []int32
		types     []int32
		offs      [][2]int
		truncated bool
	}{
		{"single", 0, "hello world", nil, []int32{2, 5, 6, 3}, []int32{0, 0, 0, 0}, [][2]int{{}, {0, 5}, {6, 11}, {}}, false},
		{"single fits exactly", 4, "hello world", nil, []int32{2, 5, 6, 3}, []int32{0, 0, 0, 0}, [][2]int{{}, {0, 5}, {6, 11}, {}}, false},
		{"single truncated, [SEP] last", 3, "hello world", nil, []int32{2, 5, 3}, []int32{0, 0, 0}, [][2]int{{}, {0, 5}, {}}, true},
		{"empty single", 0, "", nil, []int32{2, 3}, []int32{0, 0}, [][2]int{{}, {}}, false},
		{"pair", 0, "hello world", strPtr("unwanted"), []int32{2, 5, 6, 3, 7, 8, 9, 3}, []int32{0, 0, 0, 0, 1, 1, 1, 1},
			[][2]int{{}, {0, 5}, {6, 11}, {}, {0, 2}, {2, 6}, {6, 8}, {}}, false},
		{"pair: document cut", 6, "hello world", strPtr("unwanted"), []int32{2, 5, 6, 3, 7, 3}, []int32{0, 0, 0, 0, 1, 1},
			[][2]int{{}, {0, 5}, {6, 11}, {}, {0, 2}, {}}, true},
		{"pair: document emptied", 5, "hello world", strPtr("unwanted"), []int32{2, 5, 6, 3, 3}, []int32{0, 0, 0, 0, 1},
			[][2]int{{}, {0, 5}, {6, 11}, {}, {}}, true},
		{"pair: query cut after the document", 4, "hello world", strPtr("unwanted"), []int32{2, 5, 3, 3}, []int32{0, 0, 0, 1},
			[][2]int{{}, {0, 5}, {}, {}}, true},
		{"pair: both empty", 3, "", strPtr(""), []int32{2, 3, 3}, []int32{0, 0, 1}, [][2]int{{}, {}, {}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wm := w.WithMaxTokens(c.max)
			var enc Encoding
			if c.doc == nil {
				enc = wm.Encode(c.query)
			} else {
				enc = wm.EncodePair(c.query, *c.doc)
			}
			want := Encoding{IDs: c.ids, TypeIDs: c.types, Offsets: c.offs, Truncated: c.truncated}
			if !reflect.DeepEqual(enc, want) {
				t.Errorf("got %+v\nwant %+v", enc, want)
			}
		})
	}
}

func strPtr(s string) *string { return &s }

func TestNewErrors(t *testing.T) {
	cases := []struct {
		name  string
		vocab []string
		opts  Options
		want  string
	}{
		{"empty", nil, Options{}, "empty vocabulary"},
		{"no [CLS]", []string{"[UNK]", "[SEP]", "a"}, Options{}, "no [CLS]"},
		{"no [SEP]", []string{"[UNK]", "[CLS]", "a"}, Options{}, "no [SEP]"},
		{"no [UNK]", []string{"[CLS]", "[SEP]", "a"}, Options{}, "no [UNK]"},
		{"MaxTokens too small", tinyVocab, Options{MaxTokens: 2}, "MaxTokens 2"},
		{"MaxTokens negative", tinyVocab, Options{MaxTokens: -1}, "MaxTokens -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.vocab, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestGGUFFormVocabulary(t *testing.T) {
	vocab := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581hello", "ing", "\u2581runn", "[unused0]", "\u2581#"}
	w, err := New(vocab, Options{Lowercase: true})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "##ing", "runn", "[unused0]", "#"} {
		if got, ok := w.Token(int32(id)); !ok || got != want {
			t.Errorf("Token(%d) = %q, %v; want %q", id, got, ok, want)
		}
		if got, ok := w.ID(want); !ok || got != int32(id) {
			t.Errorf("ID(%q) = %d, %v; want %d", want, got, ok, id)
		}
	}
	if _, ok := w.ID("ing"); ok {
		t.Error(`ID("ing") found a continuation piece as a word`)
	}
	if _, ok := w.Token(int32(len(vocab))); ok {
		t.Error("Token past the vocabulary succeeded")
	}
	if _, ok := w.Token(-1); ok {
		t.Error("Token(-1) succeeded")
	}
	ids, _ := w.Tokenize("Running hello")
	if want := []int32{6, 5, 4}; !reflect.DeepEqual(ids, want) {
		t.Errorf("Tokenize = %v, want %v", ids, want)
	}
	if sp := w.Specials(); sp != (Specials{CLS: 2, SEP: 3, UNK: 1, PAD: 0, MASK: -1}) {
		t.Errorf("Specials = %+v", sp)
	}
	if w.VocabSize() != len(vocab) {
		t.Errorf("VocabSize = %d", w.VocabSize())
	}
}

func TestDetectUncased(t *testing.T) {
	cases := []struct {
		vocab []string
		want  bool
	}{
		{[]string{"[CLS]", "[UNK]", "hello", "##ing", "ℝ", "ß"}, true},
		{[]string{"[CLS]", "Hello"}, false},
		{[]string{"[CLS]", "\u2581É"}, false},
		{[]string{"[CLS]", "##Ω"}, false},
	}
	for _, c := range cases {
		if got := DetectUncased(c.vocab); got != c.want {
			t.Errorf("DetectUncased(%q) = %v, want %v", c.vocab, got, c.want)
		}
	}
}

func TestOptionsAndWithMaxTokens(t *testing.T) {
	w := tiny(t, Options{Lowercase: true, MaxTokens: 16})
	o := w.Options()
	if !o.Lowercase || o.StripAccents == nil || !*o.StripAccents || o.MaxTokens != 16 {
		t.Errorf("Options = %+v", o)
	}
	for _, c := range []struct{ in, want int }{{0, 0}, {-5, 0}, {1, 3}, {3, 3}, {512, 512}} {
		if got := w.WithMaxTokens(c.in).Options().MaxTokens; got != c.want {
			t.Errorf("WithMaxTokens(%d): MaxTokens %d, want %d", c.in, got, c.want)
		}
	}
	if w.Options().MaxTokens != 16 {
		t.Error("WithMaxTokens changed the original")
	}
	// A caller changing its Options copy must not change the tokenizer.
	*o.StripAccents = false
	if !*w.Options().StripAccents {
		t.Error("Options shares StripAccents with the tokenizer")
	}
}

func TestMiniLMFromGGUF(t *testing.T) {
	w := loadMiniLM(t)
	if sp := w.Specials(); sp != (Specials{CLS: 101, SEP: 102, UNK: 100, PAD: 0, MASK: 103}) {
		t.Errorf("Specials = %+v", sp)
	}
	o := w.Options()
	if !o.Lowercase || !*o.StripAccents || !o.ChineseChars || o.MaxTokens != 0 {
		t.Errorf("Options = %+v", o)
	}
	if w.VocabSize() != 30522 {
		t.Errorf("VocabSize = %d", w.VocabSize())
	}
	for tok, id := range map[string]int32{"[CLS]": 101, "the": 1996, "##s": 2015, "[unused0]": 1} {
		if got, ok := w.ID(tok); !ok || got != id {
			t.Errorf("ID(%q) = %d %v, want %d", tok, got, ok, id)
		}
	}
}

// TestPublishedTokenIDs checks the token ids published with the model's reference outputs.
func TestPublishedTokenIDs(t *testing.T) {
	data, err := os.ReadFile(sharedPath(t, "testdata/minilm_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		TokenIDs []struct {
			Text             string  `json:"text"`
			AddSpecialTokens bool    `json:"add_special_tokens"`
			IDs              []int32 `json:"ids"`
		} `json:"token_ids"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.TokenIDs) == 0 {
		t.Fatal("no token_ids in the reference")
	}
	w := loadMiniLM(t)
	for _, c := range ref.TokenIDs {
		var got []int32
		if c.AddSpecialTokens {
			got = w.Encode(c.Text).IDs
		} else {
			got, _ = w.Tokenize(c.Text)
		}
		if !reflect.DeepEqual(got, c.IDs) {
			t.Errorf("%q (specials %v): %v, want %v", c.Text, c.AddSpecialTokens, got, c.IDs)
		}
	}
}

func TestFromGGUFErrors(t *testing.T) {
	good := func(wr *gguf.Writer) {
		wr.Set("tokenizer.ggml.model", gguf.Str("bert"))
		wr.Set("tokenizer.ggml.tokens", gguf.StrArray([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\u2581a"}))
		wr.Set("tokenizer.ggml.cls_token_id", gguf.Uint32(2))
		wr.Set("tokenizer.ggml.seperator_token_id", gguf.Uint32(3))
	}
	cases := []struct {
		name   string
		modify func(wr *gguf.Writer)
		want   string // "" for success
	}{
		{"valid", func(*gguf.Writer) {}, ""},
		{"not bert", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.model", gguf.Str("gpt2")) }, "not a BERT"},
		{"no tokens", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.tokens", gguf.Uint32(5)) }, "tokenizer.ggml.tokens"},
		{"cls id past the vocabulary", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.cls_token_id", gguf.Uint32(5)) }, "cls_token_id"},
		{"negative unknown id", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.unknown_token_id", gguf.Int32(-1)) }, "unknown_token_id"},
		{"id not an integer", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.mask_token_id", gguf.Str("x")) }, "mask_token_id"},
		{"empty vocabulary", func(wr *gguf.Writer) { wr.Set("tokenizer.ggml.tokens", gguf.StrArray(nil)) }, "empty vocabulary"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wr := gguf.NewWriter()
			good(wr)
			c.modify(wr)
			var buf bytes.Buffer
			if _, err := wr.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Parse(buf.Bytes(), c.name)
			if err != nil {
				t.Fatal(err)
			}
			w, err := FromGGUF(f, 0)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ids, _ := w.Tokenize("A"); !reflect.DeepEqual(ids, []int32{4}) || !w.Options().Lowercase {
					t.Errorf("Tokenize(A) = %v, options %+v", ids, w.Options())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := FromGGUF(nil, 0); err == nil {
		t.Error("FromGGUF(nil) succeeded")
	}
}

// TestConcurrentUse encodes the corpus from many goroutines at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	w := loadMiniLM(t).WithMaxTokens(64)
	texts := corpusTexts(t)[:100]
	want := make([]Encoding, len(texts))
	for i, s := range texts {
		want[i] = w.EncodePair(s, texts[len(texts)-1-i])
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range texts {
				i := (k + g*13) % len(texts)
				if got := w.EncodePair(texts[i], texts[len(texts)-1-i]); !reflect.DeepEqual(got, want[i]) {
					errs <- texts[i]
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Errorf("concurrent encoding of %q differs", s)
	}
}

// corpusTexts returns the benchmark corpus stored in the golden file.
func corpusTexts(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range g.Configs[0].Inputs {
		if in.Pair == nil && len(in.Text) >= 20 && len(in.Text) <= 400 {
			out = append(out, in.Text)
		}
	}
	if len(out) < 100 {
		t.Fatalf("golden file holds %d corpus texts", len(out))
	}
	return out
}

// FuzzEncode checks the invariants every input must keep: no panic, ids inside the vocabulary,
// offsets inside the text and in order, the length limit, [CLS] first and [SEP] last.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello, World!", "Café 我爱 [CLS]x[SEP]", "a\x00\xff\xfe b", "İ\u0301\u200d😀", strings.Repeat("ab ", 50)} {
		f.Add(s, s+" document", 9)
	}
	w := loadMiniLM(f)
	f.Fuzz(func(t *testing.T, query, doc string, max int) {
		wm := w.WithMaxTokens(max % 600)
		for _, c := range []struct {
			enc   Encoding
			texts []string
		}{{wm.Encode(query), []string{query}}, {wm.EncodePair(query, doc), []string{query, doc}}} {
			e := c.enc
			n := len(e.IDs)
			if n < len(c.texts)+1 || len(e.TypeIDs) != n || len(e.Offsets) != n {
				t.Fatalf("lengths %d/%d/%d", n, len(e.TypeIDs), len(e.Offsets))
			}
			if limit := wm.Options().MaxTokens; limit > 0 && n > limit {
				t.Fatalf("%d tokens over the limit %d", n, limit)
			}
			if e.IDs[0] != w.Specials().CLS || e.IDs[n-1] != w.Specials().SEP {
				t.Fatalf("ids %v do not run [CLS] … [SEP]", e.IDs)
			}
			seq, prevStart := 0, 0
			for i, id := range e.IDs {
				if id < 0 || int(id) >= w.VocabSize() {
					t.Fatalf("id %d outside the vocabulary", id)
				}
				if i > 0 && e.TypeIDs[i] != e.TypeIDs[i-1] {
					seq, prevStart = seq+1, 0
				}
				o := e.Offsets[i]
				if o == [2]int{} {
					continue
				}
				if seq >= len(c.texts) || o[0] < prevStart || o[0] >= o[1] || o[1] > len(c.texts[seq]) {
					t.Fatalf("token %d offsets %v out of place (sequence %d)", i, o, seq)
				}
				prevStart = o[0]
			}
		}
	})
}
