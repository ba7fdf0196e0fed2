// Package defaults embeds the default pipeline.yaml, which `pipeline run`
// uses when no config is given and ./pipeline.yaml does not exist.
package defaults

import _ "embed"

// PipelineYAML is the embedded default config: every stage on tiny
// synthetic videos, on the CPU, in minutes.
//
//go:embed pipeline.yaml
var PipelineYAML []byte
