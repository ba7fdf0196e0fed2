package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
)

func cmdStages(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("stages", flag.ContinueOnError)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	writeKindDocs(stdout, kindsForDocs())
	return nil
}

// writeKindDocs prints every kind with its params, from the same spec that
// validates configs, and what re-runs a stage.
func writeKindDocs(w io.Writer, kinds []pipeline.Kind) {
	fmt.Fprint(w, "A stage re-runs when its params (but those marked *), its kind's version, a tool's version, a\n"+
		"needed stage's outputs or its input files change, or when a recorded output is missing or altered.\n"+
		"An interrupted stage whose key is unchanged resumes (finished items and checkpoints are kept).\n\n")
	for i, k := range kinds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (version %s)\n", k.Name, k.Version)
		if k.Doc != "" {
			fmt.Fprintf(w, "  %s\n", k.Doc)
		}
		if len(k.Tools) > 0 {
			var names []string
			for _, t := range k.Tools {
				names = append(names, t.Name)
			}
			fmt.Fprintf(w, "  tools: %s\n", strings.Join(names, ", "))
		}
		if k.KeepPrevious {
			fmt.Fprintln(w, "  a fresh run first moves the previous outputs to .pipeline/previous/<stage>-<UTC time>/ (never deleted)")
		}
		if len(k.Params) == 0 {
			continue
		}
		fmt.Fprintln(w, "  params (* not in the cache key: editing it re-runs nothing):")
		for _, p := range k.Params {
			mark := " "
			if p.NoKey {
				mark = "*"
			}
			fmt.Fprintf(w, "   %s%s  %s, default %s\n", mark, p.Name, typeName(p), defaultText(p))
			if p.Doc != "" {
				fmt.Fprintf(w, "        %s\n", p.Doc)
			}
		}
	}
}

func typeName(p pipeline.ParamSpec) string {
	t := p.Type.String()
	if len(p.Enum) > 0 {
		t = strings.Join(p.Enum, "|")
	}
	if p.Min != nil || p.Max != nil {
		lo, hi := "", ""
		if p.Min != nil {
			lo = fmt.Sprint(*p.Min)
		}
		if p.Max != nil {
			hi = fmt.Sprint(*p.Max)
		}
		t += fmt.Sprintf(" [%s..%s]", lo, hi)
	}
	return t
}

func defaultText(p pipeline.ParamSpec) string {
	switch {
	case p.Required:
		return "(required)"
	case p.Default == nil:
		return "(unset)"
	}
	switch v := p.Default.(type) {
	case string:
		if v == "" {
			return `""`
		}
		return v
	case time.Duration:
		return v.String()
	case []string:
		return "[" + strings.Join(v, ", ") + "]"
	}
	return fmt.Sprint(p.Default)
}

// kindsForDocs is the list `pipeline stages` documents.
func kindsForDocs() []pipeline.Kind { return allKinds() }
