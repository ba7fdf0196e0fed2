package stages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/gif"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

// The kinds' own checks for `pipeline verify`, beyond the engine's re-hash
// of every recorded output: each file parses as what it claims to be.

// verifyIngest checks that manifest.jsonl parses.
func verifyIngest(_ context.Context, dir string, _ pipeline.Params) error {
	_, err := ingest.ReadManifest(filepath.Join(dir, ingest.ManifestFile))
	return err
}

// verifySafetensors returns a Verify hook that decodes each named
// safetensors file of a training stage (header, offsets, sizes).
func verifySafetensors(files ...string) func(context.Context, string, pipeline.Params) error {
	return func(_ context.Context, dir string, _ pipeline.Params) error {
		var errs []error
		for _, f := range files {
			if _, err := checkpoint.Read(filepath.Join(dir, f)); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f, err))
			}
		}
		return errors.Join(errs...)
	}
}

var (
	verifyPretrain = verifySafetensors(trainer.BackboneFile, trainer.PretrainStateFile)
	verifyTrain    = verifySafetensors(trainer.TemporalFile, trainer.TrainStateFile)
)

// verifySample checks that sample.gif decodes.
func verifySample(_ context.Context, dir string, _ pipeline.Params) error {
	b, err := os.ReadFile(filepath.Join(dir, trainer.SampleGIF))
	if err != nil {
		return err
	}
	if _, err := gif.DecodeAll(bytes.NewReader(b)); err != nil {
		return fmt.Errorf("%s: %w", trainer.SampleGIF, err)
	}
	return nil
}
