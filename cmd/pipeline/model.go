package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// modelCommands are the subcommands of `pipeline model`, each in its own
// model_*.go file.
var modelCommands = map[string]func(args []string, stdout, stderr io.Writer) error{
	"info":     cmdModelInfo,
	"convert":  cmdModelConvert,
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

// configFlags collects --config values: COMPONENT=FILE (a JSON object whose
// fields override that component's config), or a model folder whose
// COMPONENT/config.json files do so for every component it has.
type configFlags map[weights.Component][]byte

func (c configFlags) String() string { return "" }

func (c configFlags) Set(v string) error {
	if comp, file, ok := strings.Cut(v, "="); ok {
		if !isComponent(weights.Component(comp)) {
			return fmt.Errorf("--config %s: unknown component %q (unet, vae, text_encoder)", v, comp)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("--config %s: %v", v, err)
		}
		c[weights.Component(comp)] = b
		return nil
	}
	found := false
	for _, comp := range weights.Components {
		b, err := os.ReadFile(filepath.Join(v, string(comp), "config.json"))
		if err == nil {
			c[comp] = b
			found = true
		}
	}
	if !found {
		return fmt.Errorf("--config %s: want COMPONENT=FILE or a folder with unet/, vae/ or text_encoder/ config.json files", v)
	}
	return nil
}

func isComponent(c weights.Component) bool {
	for _, k := range weights.Components {
		if k == c {
			return true
		}
	}
	return false
}

// openModel opens weights for a model subcommand; a file it cannot read is a
// usage error (exit 2) naming the file.
func openModel(path string, cfg configFlags) (*weights.Model, error) {
	m, err := weights.OpenWith(path, weights.Options{Configs: cfg})
	if err != nil {
		return nil, &pipeline.UsageError{Msg: err.Error()}
	}
	return m, nil
}
