package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// cmdPlan prints each stage's estimated GPU and host memory against the
// card (--gpu-memory, else the GPU found, else 24 GiB assumed), with the
// knob to turn where a stage does not fit.
func cmdPlan(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	memFlag := fs.String("gpu-memory", "", "memory of the card to plan for, e.g. 24GiB, 24GB, 80G (default: the GPU found, else 24GiB)")
	prec := fs.String("precision", "", "override the precision of the SD family's frozen weights on the GPU for every stage: float32, float16 or bfloat16 (default: each stage's precision param)")
	asJSON := fs.Bool("json", false, "print the plans as JSON (one object per stage: device and host bytes, parts, verdict) for scripts")
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	o := stages.PlanOptions{}
	switch *prec {
	case "":
	case "float32":
		o.WeightBytes = 4
	case "float16", "bfloat16":
		o.WeightBytes = 2
	default:
		return &pipeline.UsageError{Msg: fmt.Sprintf("--precision %q: want float16, bfloat16 or float32", *prec)}
	}
	card := ""
	switch {
	case *memFlag != "":
		if o.GPUMemory, err = parseBytes(*memFlag); err != nil {
			return &pipeline.UsageError{Msg: "--gpu-memory: " + err.Error()}
		}
		card = *memFlag + " (--gpu-memory)"
	default:
		if name, total, err := cuda.Card(0); err == nil {
			o.GPUMemory, card = int64(total), fmt.Sprintf("%s, %s (found)", name, stages.Human(int64(total)))
		} else {
			o.GPUMemory, card = 24<<30, "24 GiB (assumed: no GPU found; set --gpu-memory)"
		}
	}
	plans, err := stages.Plan(cfg, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Config    string             `json:"config"`
			Card      string             `json:"card"`
			GPUMemory int64              `json:"gpu_memory"`
			Stages    []stages.StagePlan `json:"stages"`
		}{cfg.File, card, o.GPUMemory, plans})
	}
	precNote := "each SD stage at its precision param"
	if *prec != "" {
		precNote = "SD frozen weights in " + *prec + " (--precision)"
	}
	fmt.Fprintf(stdout, "%s: memory plan against %s; %s\n\n", cfg.File, card, precNote)
	fmt.Fprintf(stdout, "%-10s %-10s %12s %12s  %s\n", "STAGE", "KIND", "GPU", "HOST", "VERDICT")
	for _, p := range plans {
		gpu, verdict := "-", "no GPU"
		if p.GPU {
			gpu = stages.Human(p.Device)
			verdict = "fits"
			if !p.Fits {
				verdict = "does not fit"
			}
			if p.Knob != "" {
				verdict += ": " + p.Knob
			}
		}
		host := "-"
		if p.Host > 0 {
			host = stages.Human(p.Host)
		}
		fmt.Fprintf(stdout, "%-10s %-10s %12s %12s  %s\n", p.Stage, p.Kind, gpu, host, verdict)
	}
	for _, p := range plans {
		if len(p.Parts) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "\n%s (%s):\n", p.Stage, p.Kind)
		for _, part := range p.Parts {
			fmt.Fprintf(stdout, "  %-36s %12s\n", part.Name, stages.Human(part.Bytes))
		}
		for _, n := range p.Notes {
			fmt.Fprintf(stdout, "  - %s\n", n)
		}
	}
	return nil
}

// parseBytes reads 24GiB, 24GB (10^9), 24G (GiB) or a byte count.
func parseBytes(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := float64(1)
	for _, x := range []struct {
		suf string
		m   float64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"GB", 1e9}, {"MB", 1e6}, {"G", 1 << 30}, {"M", 1 << 20}} {
		if strings.HasSuffix(u, x.suf) {
			u, mult = strings.TrimSpace(strings.TrimSuffix(u, x.suf)), x.m
			break
		}
	}
	v, err := strconv.ParseFloat(u, 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("%q is not a memory size (e.g. 24GiB)", s)
	}
	return int64(v * mult), nil
}
