package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer/tokenizer"
)

const tokenizeUsage = "model tokenize [--tokenizer DIR | MODEL] TEXT..."

// cmdModelTokenize prints each text's 77 CLIP token ids as a JSON array, one
// line per text, and warns on stderr about every text cut to fit.
func cmdModelTokenize(args []string, stdout, stderr io.Writer) error {
	var dir string
	var texts []string
	flags := true
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case flags && a == "--":
			flags = false
		case flags && (a == "-h" || a == "--help" || a == "-help"):
			fmt.Fprintln(stdout, "usage: pipeline "+tokenizeUsage)
			fmt.Fprintln(stdout, "  prints each TEXT's token ids (77, padded with <|endoftext|>) as a JSON array per line;")
			fmt.Fprintln(stdout, "  MODEL is an SD model folder (its tokenizer/ is used); -- ends the flags")
			return errHelp
		case flags && (a == "--tokenizer" || a == "-tokenizer"):
			if i+1 >= len(args) {
				return &pipeline.UsageError{Msg: "model tokenize: --tokenizer needs a folder"}
			}
			i++
			dir = args[i]
		case flags && (strings.HasPrefix(a, "--tokenizer=") || strings.HasPrefix(a, "-tokenizer=")):
			dir = a[strings.Index(a, "=")+1:]
		case flags && strings.HasPrefix(a, "-") && a != "-":
			return &pipeline.UsageError{Msg: fmt.Sprintf("model tokenize: unknown flag %s (usage: %s)", a, tokenizeUsage)}
		default:
			texts = append(texts, a)
		}
	}
	if dir == "" {
		if len(texts) == 0 {
			return &pipeline.UsageError{Msg: "usage: pipeline " + tokenizeUsage}
		}
		dir, texts = texts[0], texts[1:]
	}
	if len(texts) == 0 {
		return &pipeline.UsageError{Msg: "model tokenize: no TEXT given (usage: " + tokenizeUsage + ")"}
	}
	found, err := tokenizer.Find(dir)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Load(found)
	if err != nil {
		return err
	}
	for i, text := range texts {
		ids, cut := tok.Encode(text)
		if cut {
			n := len(tok.Tokens(text))
			fmt.Fprintf(stderr, "warning: text %d (%s) has %d tokens; cut to the %d that fit in %d positions\n",
				i+1, preview(text), n, tokenizer.MaxLength-2, tokenizer.MaxLength)
		}
		line, _ := json.Marshal(ids)
		if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
			return err
		}
	}
	return nil
}

// preview quotes the start of a long text for a warning.
func preview(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		return fmt.Sprintf("%q...", string(r[:40]))
	}
	return fmt.Sprintf("%q", s)
}
