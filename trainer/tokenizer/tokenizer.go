package tokenizer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Special tokens and the text encoder's length.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
	// MaxLength is the number of positions of SD's CLIP text encoder: the
	// start token, at most 75 text tokens and the end token, then padding.
	MaxLength = 77
)

// maxMerges is how many merges CLIPTokenizer reads: the vocabulary's 49,408
// entries less the 512 byte tokens (with and without the word end), the two
// special tokens and the merges it never uses.
const maxMerges = 49152 - 256 - 2

// ErrNoTokenizer is wrapped when a folder has no vocab.json or merges.txt.
var ErrNoTokenizer = errors.New("tokenizer: no CLIP tokenizer (vocab.json and merges.txt)")

// pattern is CLIPTokenizer's pre-tokenizer split (the matches are kept,
// the rest, white space, dropped): special tokens, English contractions,
// runs of letters, single digits, runs of anything else. Go's \s is ASCII
// only; normalize leaves no other white space.
var pattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// gpt2Pattern is the byte-level pre-tokenizer's own split, applied to each
// piece of pattern's: on those pieces it changes only a special token's
// text that was not matched as one (its letters split from its bars).
var gpt2Pattern = regexp.MustCompile(`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+`)

type pair struct{ a, b string }

// Tokenizer is a loaded CLIP tokenizer; safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int
	ranks   map[pair]int
	byteEnc [256]string
	bos     int
	eos     int

	mu    sync.Mutex
	cache map[string][]string
}

// Load reads dir/vocab.json and dir/merges.txt.
func Load(dir string) (*Tokenizer, error) {
	vp, mp := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	for _, p := range []string{vp, mp} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoTokenizer, dir, err)
		}
	}
	vf, err := os.Open(vp)
	if err != nil {
		return nil, err
	}
	defer vf.Close()
	mf, err := os.Open(mp)
	if err != nil {
		return nil, err
	}
	defer mf.Close()
	t, err := New(vf, mf)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
	}
	return t, nil
}

// New builds a tokenizer from a vocab.json and a merges.txt stream.
func New(vocab, merges io.Reader) (*Tokenizer, error) {
	t := &Tokenizer{ranks: map[pair]int{}, cache: map[string][]string{}}
	if err := json.NewDecoder(vocab).Decode(&t.vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	var ok1, ok2 bool
	t.bos, ok1 = t.vocab[StartOfText]
	t.eos, ok2 = t.vocab[EndOfText]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("vocab.json: no %s or %s entry", StartOfText, EndOfText)
	}
	sc := bufio.NewScanner(merges)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() && len(t.ranks) < maxMerges {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 && strings.HasPrefix(text, "#version") {
			continue
		}
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, fmt.Errorf("merges.txt line %d: want two symbols, got %q", line, text)
		}
		p := pair{f[0], f[1]}
		if _, dup := t.ranks[p]; !dup {
			t.ranks[p] = len(t.ranks)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("merges.txt: %w", err)
	}
	if len(t.ranks) == 0 {
		return nil, errors.New("merges.txt: no merges")
	}
	t.byteEnc = byteEncoder()
	return t, nil
}

// byteEncoder is GPT-2's reversible map from bytes to printable characters:
// printable Latin-1 bytes stand for themselves, the others are shifted to
// U+0100 and up, in byte order.
func byteEncoder() [256]string {
	var enc [256]string
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			enc[b] = string(rune(b))
		} else {
			enc[b] = string(rune(256 + n))
			n++
		}
	}
	return enc
}

// Tokens returns the ids of text without the start and end tokens and
// without truncation. Special tokens written in the text become their ids.
func (t *Tokenizer) Tokens(text string) []int {
	var ids []int
	for text != "" {
		seg, special, rest := splitSpecial(text)
		ids = t.appendSegment(ids, seg)
		switch special {
		case StartOfText:
			ids = append(ids, t.bos)
		case EndOfText:
			ids = append(ids, t.eos)
		}
		text = rest
	}
	return ids
}

// splitSpecial cuts text at its first special token, as the reference's
// added-token split does before any cleaning.
func splitSpecial(text string) (before, special, rest string) {
	i, j := strings.Index(text, StartOfText), strings.Index(text, EndOfText)
	switch {
	case i < 0 && j < 0:
		return text, "", ""
	case j < 0 || (i >= 0 && i < j):
		return text[:i], StartOfText, text[i+len(StartOfText):]
	default:
		return text[:j], EndOfText, text[j+len(EndOfText):]
	}
}

func (t *Tokenizer) appendSegment(ids []int, seg string) []int {
	for _, piece := range pattern.FindAllString(normalize(seg), -1) {
		for _, word := range gpt2Pattern.FindAllString(piece, -1) {
			for _, sym := range t.bpe(word) {
				id, ok := t.vocab[sym]
				if !ok {
					id = t.eos // CLIP's unknown token is <|endoftext|>
				}
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// Encode returns text's MaxLength ids: the start token, the text's tokens
// cut to MaxLength-2, the end token and end-token padding; truncated says
// whether tokens were cut.
func (t *Tokenizer) Encode(text string) (ids []int, truncated bool) {
	return t.EncodeLength(text, MaxLength)
}

// EncodeLength is Encode for a sequence of n positions (n >= 2).
func (t *Tokenizer) EncodeLength(text string, n int) (ids []int, truncated bool) {
	toks := t.Tokens(text)
	if len(toks) > n-2 {
		toks, truncated = toks[:n-2], true
	}
	ids = make([]int, 0, n)
	ids = append(ids, t.bos)
	ids = append(ids, toks...)
	ids = append(ids, t.eos)
	for len(ids) < n {
		ids = append(ids, t.eos)
	}
	return ids, truncated
}

// VocabSize is the number of vocabulary entries.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// bpe splits one pre-token into vocabulary symbols: its UTF-8 bytes mapped
// through the byte encoder, "</w>" on the last one, then merges applied
// lowest rank first, every occurrence left to right.
func (t *Tokenizer) bpe(word string) []string {
	t.mu.Lock()
	if c, ok := t.cache[word]; ok {
		t.mu.Unlock()
		return c
	}
	t.mu.Unlock()
	syms := make([]string, len(word))
	for i := 0; i < len(word); i++ {
		syms[i] = t.byteEnc[word[i]]
	}
	syms[len(syms)-1] += "</w>"
	for len(syms) > 1 {
		best, bestRank := pair{}, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[pair{syms[i], syms[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = pair{syms[i], syms[i+1]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		merged := syms[:0:0]
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == best.a && syms[i+1] == best.b {
				merged = append(merged, best.a+best.b)
				i++
			} else {
				merged = append(merged, syms[i])
			}
		}
		syms = merged
	}
	t.mu.Lock()
	if len(t.cache) < 1<<16 {
		t.cache[word] = syms
	}
	t.mu.Unlock()
	return syms
}
