package tokenizer

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	loadOnce sync.Once
	loaded   *Tokenizer
	loadErr  error
)

func testTokenizer(t *testing.T) *Tokenizer {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = Load("testdata") })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// TestPublicPromptsMatchReference checks every prompt of tokens-public.json
// (transformers' CLIPTokenizer ids) id for id.
func TestPublicPromptsMatchReference(t *testing.T) {
	tok := testTokenizer(t)
	raw, err := os.ReadFile("testdata/tokens-public.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Prompt string `json:"prompt"`
		IDs    []int  `json:"ids"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 10 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		got, _ := tok.Encode(c.Prompt)
		if !reflect.DeepEqual(got, c.IDs) {
			t.Errorf("%q:\n got %v\nwant %v", c.Prompt, got, c.IDs)
		}
	}
}

func TestVocabularyIsCLIPs(t *testing.T) {
	tok := testTokenizer(t)
	if tok.VocabSize() != 49408 || tok.bos != 49406 || tok.eos != 49407 || len(tok.ranks) != 48894 {
		t.Fatalf("vocab %d bos %d eos %d merges %d", tok.VocabSize(), tok.bos, tok.eos, len(tok.ranks))
	}
}

func TestTruncationKeepsEndToken(t *testing.T) {
	tok := testTokenizer(t)
	long := strings.Repeat("cloud ", 100)
	ids, cut := tok.Encode(long)
	if !cut || len(ids) != MaxLength || ids[0] != 49406 || ids[76] != 49407 || ids[75] == 49407 {
		t.Fatalf("cut %v ids %v", cut, ids)
	}
	// exactly 75 text tokens fit without a cut
	ids, cut = tok.Encode(strings.Repeat("cloud ", 75))
	if cut || ids[75] == 49407 || ids[76] != 49407 {
		t.Fatalf("75 tokens: cut %v ids %v", cut, ids)
	}
	if _, cut = tok.Encode(strings.Repeat("cloud ", 76)); !cut {
		t.Fatal("76 tokens not reported as cut")
	}
}

// TestNormalization covers what the reference's normalizer and
// pre-tokenizer do to text, by equalities and differences that hold for
// transformers 5's CLIPTokenizer (the tokenizers-library pipeline).
func TestNormalization(t *testing.T) {
	tok := testTokenizer(t)
	same := [][2]string{
		{"A  Cloud\t\nOver", "a cloud over"},     // white space collapsed, lower-cased
		{"cloud\u00a0sky\u3000x", "cloud sky x"}, // Unicode white space is a space
		{"line\u2028break\u0085x", "line break x"},
		{"cafe\u0301", "café"},                   // NFC
		{"ΟΔΟΣ", "οδοσ"},                         // per-character lower case: no final sigma
		{"\u0130stanbul", "i\u0307stanbul"},      // U+0130's full lower case
		{"DON'T", "don't"},                       // contractions after lower-casing
		{"x<|endoftext|>y", "x <|endoftext|> y"}, // special tokens split first
		{"  ", ""},                               // nothing left
	}
	for _, s := range same {
		a, b := tok.Tokens(s[0]), tok.Tokens(s[1])
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%q -> %v, %q -> %v", s[0], a, s[1], b)
		}
	}
	differ := [][2]string{
		{"cloud\u200bsky", "cloudsky"}, // a zero-width space is kept (not white space)
		{"東京", "東 京"},                  // CJK ideographs are one run of letters
		{"ΟΔΟΣ", "οδος"},
	}
	for _, s := range differ {
		if a, b := tok.Tokens(s[0]), tok.Tokens(s[1]); reflect.DeepEqual(a, b) {
			t.Errorf("%q and %q both -> %v", s[0], s[1], a)
		}
	}
	if got := tok.Tokens("<|startoftext|>"); !reflect.DeepEqual(got, []int{49406}) {
		t.Errorf("start token in text: %v", got)
	}
	// a special token's text in other case is not the token: its letters
	// are split from its bars by the byte-level pre-tokenizer
	if got := tok.Tokens("<|EndOfText|>"); len(got) < 3 || slices.Contains(got, 49407) {
		t.Errorf("<|EndOfText|>: %v", got)
	}
	if got := tok.Tokens("1234"); len(got) != 4 {
		t.Errorf("digits are one token each: %v", got)
	}
	// contractions: 's 't 're 've 'm 'll 'd are tokens of their own
	for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
		if got := tok.Tokens("it" + c); len(got) != 2 || got[1] != tok.vocab[c+"</w>"] {
			t.Errorf("it%s -> %v", c, got)
		}
	}
}

func TestLoadErrorsNameTheFolder(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err %v", err)
	}
	os.WriteFile(dir+"/vocab.json", []byte(`{"a": 1}`), 0o644)
	os.WriteFile(dir+"/merges.txt", []byte("#version: 0.2\na b\n"), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "<|startoftext|>") {
		t.Fatalf("err %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	tok := testTokenizer(t)
	want, _ := tok.Encode("a timelapse of clouds")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if got, _ := tok.Encode("a timelapse of clouds"); !reflect.DeepEqual(got, want) {
					t.Error("differs under concurrency")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzEncode: any text gives MaxLength ids in the vocabulary, starting with
// the start token and ending with the end token.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "a timelapse", "don't", "東京 🌅", "<|endoftext|>x", "ΟΔΟΣ\u0345", "\xff\xfe"} {
		f.Add(s)
	}
	tok, err := Load("testdata")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, _ := tok.Encode(s)
		if len(ids) != MaxLength || ids[0] != tok.bos || ids[MaxLength-1] != tok.eos {
			t.Fatalf("%q: %v", s, ids)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("%q: id %d", s, id)
			}
		}
	})
}
