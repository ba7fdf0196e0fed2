package weights

import (
	"fmt"
	"sort"
	"strings"
)

// param is one tensor a config implies: its diffusers name, its name in the
// original (LDM) single-file layout ("" when it has none) and its shape.
type param struct {
	name     string
	ldm      string
	shape    []int
	ldmShape []int // the single file's shape when it differs (VAE attention: [C,C,1,1])
}

// paramList collects params; prefix "" for the LDM side means "none".
type paramList struct{ ps []param }

func (l *paramList) add(name, ldm string, shape ...int) {
	l.ps = append(l.ps, param{name: name, ldm: ldm, shape: shape})
}

func (l *paramList) linear(name, ldm string, out, in int, bias bool) {
	l.add(name+".weight", ldm+".weight", out, in)
	if bias {
		l.add(name+".bias", ldm+".bias", out)
	}
}

func (l *paramList) norm(name, ldm string, c int) {
	l.add(name+".weight", ldm+".weight", c)
	l.add(name+".bias", ldm+".bias", c)
}

func (l *paramList) conv(name, ldm string, out, in, k int) {
	l.add(name+".weight", ldm+".weight", out, in, k, k)
	l.add(name+".bias", ldm+".bias", out)
}

// countParams sums the element counts of ps.
func countParams(ps []param) int64 {
	var n int64
	for _, p := range ps {
		n += int64(numel(p.shape))
	}
	return n
}

// nameSet answers shape questions about a file's tensors during inference.
type nameSet map[string][]int

func (s nameSet) has(n string) bool { _, ok := s[n]; return ok }

// dim returns dimension i of tensor n, or an error naming the tensor.
func (s nameSet) dim(n string, i int) (int, error) {
	sh, ok := s[n]
	if !ok {
		return 0, fmt.Errorf("missing tensor %s", n)
	}
	if i >= len(sh) {
		return 0, fmt.Errorf("tensor %s has shape %v, expected at least %d dimensions", n, sh, i+1)
	}
	return sh[i], nil
}

// count returns how many consecutive indices i from 0 have prefix+i+"." names.
func (s nameSet) count(prefix string) int {
	idx := map[string]bool{}
	for n := range s {
		if rest, ok := strings.CutPrefix(n, prefix); ok {
			if i := strings.IndexByte(rest, '.'); i > 0 {
				idx[rest[:i]] = true
			}
		}
	}
	k := 0
	for idx[fmt.Sprint(k)] {
		k++
	}
	return k
}

// firstWithSuffix returns the sorted-first name ending in suffix.
func (s nameSet) firstWithSuffix(suffix string) (string, bool) {
	var best string
	for n := range s {
		if strings.HasSuffix(n, suffix) && (best == "" || n < best) {
			best = n
		}
	}
	return best, best != ""
}

// checkTensors compares the tensors a file has with those its config implies:
// missing tensors, unexpected ones and shape mismatches, each with the first
// few names.
func checkTensors(have map[string][]int, want []param) error {
	wantSet := make(map[string][]int, len(want))
	for _, p := range want {
		wantSet[p.name] = p.shape
	}
	var missing, extra, badShape []string
	for _, p := range want {
		sh, ok := have[p.name]
		switch {
		case !ok:
			missing = append(missing, p.name)
		case !sameShape(sh, p.shape):
			badShape = append(badShape, fmt.Sprintf("%s is %v, the config wants %v", p.name, sh, p.shape))
		}
	}
	for n := range have {
		if _, ok := wantSet[n]; !ok {
			extra = append(extra, n)
		}
	}
	var probs []string
	if len(missing) > 0 {
		probs = append(probs, fmt.Sprintf("%d missing tensor(s): %s", len(missing), firstFew(missing)))
	}
	if len(badShape) > 0 {
		probs = append(probs, fmt.Sprintf("%d unexpected shape(s): %s", len(badShape), firstFew(badShape)))
	}
	if len(extra) > 0 {
		probs = append(probs, fmt.Sprintf("%d unexpected tensor(s): %s", len(extra), firstFew(extra)))
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s", strings.Join(probs, "; "))
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func firstFew(names []string) string {
	sort.Strings(names)
	const k = 5
	if len(names) > k {
		return strings.Join(names[:k], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-k)
	}
	return strings.Join(names, ", ")
}
