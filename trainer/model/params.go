package model

import (
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Param is one named float32 host tensor. Data is row-major with Shape;
// Dense shares Data's memory.
type Param struct {
	ParamSpec
	Data []float32
	t    *tensor.Dense
}

// Dense returns a tensor sharing the parameter's memory.
func (p *Param) Dense() *tensor.Dense {
	if p.t == nil {
		p.t = tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
	}
	return p.t
}

// Params is the ordered set of parameters of the video model (backbone and
// temporal); the order is Describe(cfg, true).Params.
type Params struct {
	Config Config
	List   []*Param
	byName map[string]*Param
}

// NewParams allocates the parameters of cfg and initialises the backbone
// with seed and the temporal layers (deterministically: identity and zero
// projections, random qkv) with seed+1.
func NewParams(cfg Config, seed uint64) (*Params, error) {
	net, err := Describe(cfg, true)
	if err != nil {
		return nil, err
	}
	p, err := NewNetParams(net, seed)
	if err != nil {
		return nil, err
	}
	p.Config = cfg
	return p, nil
}

// Get returns the named parameter or nil.
func (p *Params) Get(name string) *Param { return p.byName[name] }

// Count returns the total and temporal parameter counts.
func (p *Params) Count() (total, temporal int) {
	for _, q := range p.List {
		total += len(q.Data)
		if q.Temporal {
			temporal += len(q.Data)
		}
	}
	return total, temporal
}

// Backbone returns the non-temporal parameters in order.
func (p *Params) Backbone() []*Param { return p.filter(false) }

// TemporalParams returns the temporal parameters in order.
func (p *Params) TemporalParams() []*Param { return p.filter(true) }

func (p *Params) filter(temporal bool) []*Param {
	var out []*Param
	for _, q := range p.List {
		if q.Temporal == temporal {
			out = append(out, q)
		}
	}
	return out
}

// Clone returns a deep copy.
func (p *Params) Clone() *Params {
	c := &Params{Config: p.Config, byName: make(map[string]*Param, len(p.List))}
	for _, q := range p.List {
		d := &Param{ParamSpec: q.ParamSpec, Data: append([]float32(nil), q.Data...)}
		c.List = append(c.List, d)
		c.byName[d.Name] = d
	}
	return c
}

// InitBackbone re-initialises every backbone parameter from seed.
func (p *Params) InitBackbone(seed uint64) { p.init(false, seed) }

// InitTemporal re-initialises every temporal parameter from seed: temporal
// convs to identity, temporal attention output projections to zero.
func (p *Params) InitTemporal(seed uint64) { p.init(true, seed) }

func (p *Params) init(temporal bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x7469_6d65_6c61_7073))
	for _, q := range p.List {
		if q.Temporal != temporal {
			continue
		}
		initParam(q, rng)
	}
}

func initParam(q *Param, rng *rand.Rand) {
	switch q.Init {
	case InitZeros:
		clear(q.Data)
	case InitOnes:
		for i := range q.Data {
			q.Data[i] = 1
		}
	case InitIdentity:
		// (K, C, 3) with K == C: centre tap is the identity matrix
		clear(q.Data)
		k, c := q.Shape[0], q.Shape[1]
		for i := 0; i < k && i < c; i++ {
			q.Data[(i*c+i)*3+1] = 1
		}
	default:
		bound := 1 / math.Sqrt(float64(max(1, q.FanIn)))
		for i := range q.Data {
			q.Data[i] = float32((2*rng.Float64() - 1) * bound)
		}
	}
}
