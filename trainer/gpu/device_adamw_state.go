package gpu

import (
	"fmt"
	"strconv"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// State returns the moments and step in trainer/optim.AdamW's checkpoint
// format ("m/<param>", "v/<param>", metadata optim_step), so a run can
// switch optimizer_state between host and device across a resume.
func (o *DeviceAdamW) State() (*checkpoint.File, error) {
	f := checkpoint.New()
	f.Metadata["optim_step"] = strconv.Itoa(o.step)
	f.Metadata["optimizer"] = "adamw"
	for i, q := range o.s.trainable {
		m, err := o.m[i].ToHost()
		if err != nil {
			return nil, err
		}
		v, err := o.v[i].ToHost()
		if err != nil {
			return nil, err
		}
		f.Tensors["m/"+q.Name] = checkpoint.Tensor{Shape: q.Shape, Data: m}
		f.Tensors["v/"+q.Name] = checkpoint.Tensor{Shape: q.Shape, Data: v}
	}
	return f, nil
}

// LoadState restores moments and step saved by State or by
// trainer/optim.AdamW.State.
func (o *DeviceAdamW) LoadState(f *checkpoint.File) error {
	step, err := strconv.Atoi(f.Metadata["optim_step"])
	if err != nil || step < 0 {
		return fmt.Errorf("gpu: optimizer state has no valid optim_step (%q)", f.Metadata["optim_step"])
	}
	for i, q := range o.s.trainable {
		for _, k := range []string{"m/", "v/"} {
			t, ok := f.Tensors[k+q.Name]
			if !ok {
				return fmt.Errorf("gpu: optimizer state lacks %s%s", k, q.Name)
			}
			if len(t.Data) != o.m[i].Len() {
				return fmt.Errorf("gpu: optimizer state %s%s has %d values, param has %d", k, q.Name, len(t.Data), o.m[i].Len())
			}
		}
	}
	for i, q := range o.s.trainable {
		if err := o.m[i].Upload(f.Tensors["m/"+q.Name].Data); err != nil {
			return err
		}
		if err := o.v[i].Upload(f.Tensors["v/"+q.Name].Data); err != nil {
			return err
		}
	}
	o.step = step
	return nil
}

// SetSchedule replaces the learning-rate schedule (as trainer/optim.AdamW).
func (o *DeviceAdamW) SetSchedule(s optim.Schedule) { o.cfg.Schedule = s }

// StepCount returns the number of steps taken.
func (o *DeviceAdamW) StepCount() int { return o.step }
