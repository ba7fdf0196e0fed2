package optim

import (
	"fmt"
	"strconv"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

// State returns the optimizer's state as a safetensors file: tensors
// "m/<param>" and "v/<param>" (copies) and metadata "optim_step".
func (o *AdamW) State() *checkpoint.File {
	f := checkpoint.New()
	f.Metadata["optim_step"] = strconv.Itoa(o.step)
	f.Metadata["optimizer"] = "adamw"
	for i, p := range o.params {
		f.Tensors["m/"+p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: append([]float32(nil), o.m[i]...)}
		f.Tensors["v/"+p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: append([]float32(nil), o.v[i]...)}
	}
	return f
}

// LoadState restores moments and step saved by State. Every param must have
// both moments with its size.
func (o *AdamW) LoadState(f *checkpoint.File) error {
	step, err := strconv.Atoi(f.Metadata["optim_step"])
	if err != nil || step < 0 {
		return fmt.Errorf("optim: state has no valid optim_step (%q)", f.Metadata["optim_step"])
	}
	for i, p := range o.params {
		for _, k := range []struct {
			prefix string
			dst    []float32
		}{{"m/", o.m[i]}, {"v/", o.v[i]}} {
			t, ok := f.Tensors[k.prefix+p.Name]
			if !ok {
				return fmt.Errorf("optim: state lacks %s%s", k.prefix, p.Name)
			}
			if len(t.Data) != len(k.dst) {
				return fmt.Errorf("optim: state %s%s has %d values, param has %d", k.prefix, p.Name, len(t.Data), len(k.dst))
			}
		}
	}
	for i, p := range o.params {
		copy(o.m[i], f.Tensors["m/"+p.Name].Data)
		copy(o.v[i], f.Tensors["v/"+p.Name].Data)
	}
	o.step = step
	return nil
}
