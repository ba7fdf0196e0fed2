package weights

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// ErrExists is returned by Convert when its output path exists.
var ErrExists = errors.New("exists")

// componentFile is the weight file name Convert writes per component.
var componentFile = map[Component]string{
	UNet: "diffusion_pytorch_model.safetensors", VAE: "diffusion_pytorch_model.safetensors", TextEncoder: "model.safetensors",
}

// Convert writes m as a diffusers-layout folder at out: COMPONENT/config.json
// and COMPONENT/<weights>.safetensors for each component, every tensor in the
// dtype it was stored in. The folder is built under a temporary name beside
// out and renamed into place when complete; an existing out is never touched.
func Convert(m *Model, out string) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("weights: convert: %s %w; remove it or choose another output (nothing is overwritten)", out, ErrExists)
	}
	if len(m.Components) == 0 {
		return fmt.Errorf("weights: convert %s: no components", m.Path)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("weights: convert: %w", err)
	}
	tmp := atomicfile.TempPath(out)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("weights: convert: %w", err)
	}
	if err := writeFolder(m, tmp); err != nil {
		os.RemoveAll(tmp) // ours: created above
		return err
	}
	if err := renameNoReplace(tmp, out); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("weights: convert: move into place %s: %w", out, err)
	}
	return nil
}

func writeFolder(m *Model, dir string) error {
	for _, c := range Components {
		s, ok := m.Components[c]
		if !ok {
			continue
		}
		cd := filepath.Join(dir, string(c))
		if err := os.Mkdir(cd, 0o755); err != nil {
			return fmt.Errorf("weights: convert: %w", err)
		}
		af, err := atomicfile.Create(filepath.Join(cd, "config.json"))
		if err != nil {
			return fmt.Errorf("weights: convert: %w", err)
		}
		if _, err := af.Write(m.Configs[c]); err != nil {
			af.Abort()
			return fmt.Errorf("weights: convert: %w", err)
		}
		if err := af.Commit(); err != nil {
			return fmt.Errorf("weights: convert: %w", err)
		}
		if err := WriteSafetensors(filepath.Join(cd, componentFile[c]), s, map[string]string{"format": "pt"}); err != nil {
			return err
		}
	}
	return nil
}
