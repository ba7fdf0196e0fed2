package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// modelCommands are the subcommands of `pipeline model`, each in its own
// model_*.go file.
var modelCommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"tokenize": cmdModelTokenize,
}

func cmdModel(args []string, stdout, stderr io.Writer) error {
	names := make([]string, 0, len(modelCommands))
	for n := range modelCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return &pipeline.UsageError{Msg: "model: want a subcommand: " + strings.Join(names, ", ")}
	}
	cmd, ok := modelCommands[args[0]]
	if !ok {
		return &pipeline.UsageError{Msg: fmt.Sprintf("model: unknown subcommand %q (want %s)", args[0], strings.Join(names, ", "))}
	}
	return cmd(args[1:], stdout, stderr)
}
