package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
)

// Find returns the tokenizer folder that path names: a folder holding
// vocab.json and merges.txt, or a model folder with a tokenizer/ inside. A
// single-file checkpoint has no tokenizer, which the error says.
func Find(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("tokenizer: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%w: %s is a single file, which holds no tokenizer; name a tokenizer folder (an SD model folder's tokenizer/)", ErrNoTokenizer, path)
	}
	for _, dir := range []string{path, filepath.Join(path, "tokenizer")} {
		if isFile(filepath.Join(dir, "vocab.json")) && isFile(filepath.Join(dir, "merges.txt")) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: neither %s nor %s has vocab.json and merges.txt", ErrNoTokenizer, path, filepath.Join(path, "tokenizer"))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
