package model

import (
	"fmt"
	"slices"
	"strings"
)

// WeightSource is a set of named tensors read as float32 (the interface
// trainer/weights' sources satisfy through an adapter, and
// checkpoint.File through FileSource).
type WeightSource interface {
	Names() []string
	TensorShape(name string) ([]int, bool)
	Read(name string, dst []float32) error
}

// LoadWeights fills the parameters of p from src by name. Every parameter
// must be present with its shape; skip(name) names parameters that may be
// missing (they keep their values: the fresh temporal layers of a backbone
// being inflated). src tensors no parameter takes are an error unless
// extra is true. Errors list the first few names.
func LoadWeights(p *Params, src WeightSource, skip func(string) bool, extra bool) error {
	have := map[string]bool{}
	for _, n := range src.Names() {
		have[n] = true
	}
	var missing, badShape []string
	for _, q := range p.List {
		shape, ok := src.TensorShape(q.Name)
		if !ok {
			if skip == nil || !skip(q.Name) {
				missing = append(missing, q.Name)
			}
			continue
		}
		delete(have, q.Name)
		if !sameElems(shape, q.Shape) {
			badShape = append(badShape, fmt.Sprintf("%s is %v, want %v", q.Name, shape, q.Shape))
			continue
		}
		if err := src.Read(q.Name, q.Data); err != nil {
			return fmt.Errorf("model: read %s: %w", q.Name, err)
		}
	}
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors missing (%s)", len(missing), firstFew(missing)))
	}
	if len(badShape) > 0 {
		errs = append(errs, fmt.Sprintf("%d tensors of the wrong shape (%s)", len(badShape), firstFew(badShape)))
	}
	if !extra && len(have) > 0 {
		left := make([]string, 0, len(have))
		for n := range have {
			left = append(left, n)
		}
		slices.Sort(left)
		errs = append(errs, fmt.Sprintf("%d unexpected tensors (%s)", len(left), firstFew(left)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("model: weights do not fit the network: %s", strings.Join(errs, "; "))
	}
	return nil
}

// sameElems compares shapes, treating a 1x1 conv kernel and a linear
// weight alike ([C, K, 1, 1] vs [C, K]) and ignoring no other difference.
func sameElems(a, b []int) bool {
	trim := func(s []int) []int {
		for len(s) > 2 && s[len(s)-1] == 1 {
			s = s[:len(s)-1]
		}
		return s
	}
	return slices.Equal(trim(a), trim(b))
}

func firstFew(names []string) string {
	const n = 5
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", ... %d more", len(names)-n)
}
