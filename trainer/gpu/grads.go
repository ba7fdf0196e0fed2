package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// gbuf is a gradient buffer that several values may share (the backward of
// an addition hands the same gradient to both inputs); it is freed when the
// last holder lets go.
type gbuf struct {
	t    *cuda.Tensor
	refs int
}

func (g *gbuf) release() {
	g.refs--
	if g.refs == 0 {
		g.t.Free()
		g.t = nil
	}
}

// gradOut returns a buffer for a fresh contribution to the gradient of
// value v: the gradient buffer itself when v has none yet (done then adopts
// it), else a temporary that done adds in.
func (s *Step) gradOut(v int) (t *cuda.Tensor, done func() error, err error) {
	t, err = s.dev.NewTensor(s.p.shapes[v]...)
	if err != nil {
		return nil, nil, err
	}
	return t, func() error {
		defer func() {
			if s.grads[v] == nil || s.grads[v].t != t {
				t.Free()
			}
		}()
		if s.grads[v] == nil {
			s.grads[v] = &gbuf{t: t, refs: 1}
			return nil
		}
		return s.addInto(v, t)
	}, nil
}

// addInto adds x to v's gradient, copying first when the buffer is shared.
func (s *Step) addInto(v int, x *cuda.Tensor) error {
	g := s.grads[v]
	if g.refs == 1 {
		return s.dev.Add(g.t, g.t, x)
	}
	n, err := s.dev.NewTensor(s.p.shapes[v]...)
	if err != nil {
		return err
	}
	if err := s.dev.Add(n, g.t, x); err != nil {
		n.Free()
		return err
	}
	g.release()
	s.grads[v] = &gbuf{t: n, refs: 1}
	return nil
}

// share passes gradient buffer g on to value v unchanged (identity
// backward), or adds it to v's gradient.
func (s *Step) share(v int, g *gbuf) error {
	if s.grads[v] == nil {
		g.refs++
		s.grads[v] = g
		return nil
	}
	return s.addInto(v, g.t)
}
