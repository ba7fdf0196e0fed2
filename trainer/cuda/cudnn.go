package cuda

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// cuDNN constants (cudnn_graph.h / cudnn_cnn.h, stable since cuDNN 7).
const (
	dnnDataFloat        = 0
	dnnDataHalf         = 2
	dnnDataBFloat16     = 9
	dnnTensorNCHW       = 0
	dnnTensorNHWC       = 1
	dnnCrossCorrelation = 1
	dnnDefaultMath      = 0  // may use TF32 tensor cores
	dnnTensorOpMath     = 1  // may use tensor cores on 16-bit operands
	dnnFMAMath          = 3  // strict float32
	dnnDeterministic    = 1  // cudnnDeterminism_t: CUDNN_DETERMINISTIC
	dnnPerfBytes        = 48 // cudnnConvolution*AlgoPerf_t: algo, status, time, memory (at 16), determinism (24), mathType (28), reserved
	dnnMaxAlgos         = 8
	dnnMaxWorkspace     = 1 << 30
)

// dnnAPI holds the legacy convolution entry points of cuDNN 9 (deprecated there but
// present; the same calls PyTorch's heuristics mode makes).
type dnnAPI struct {
	path                                                 string
	create, destroy, setStream, errString                uintptr
	createTensor, setTensor4dEx, destroyTensor           uintptr
	createFilter, setFilter4d, destroyFilter             uintptr
	createConv, setConv2d, setConvMath, destroyConv      uintptr
	fwdAlgo, fwdWS, fwd, bwdDataAlgo, bwdDataWS, bwdData uintptr
	bwdFilterAlgo, bwdFilterWS, bwdFilter                uintptr
	findFwd, findBwdData, findBwdFilter                  uintptr // optional
}

var dnnLoad loadOnce[dnnAPI]

func loadDNN() (*dnnAPI, error) {
	return dnnLoad.get(func() (*dnnAPI, error) {
		h, path, err := libCUDNN.open()
		if err != nil {
			return nil, err
		}
		s := symbols{lib: path, handle: h}
		a := &dnnAPI{
			path:          path,
			create:        s.get("cudnnCreate"),
			destroy:       s.get("cudnnDestroy"),
			setStream:     s.get("cudnnSetStream"),
			errString:     s.get("cudnnGetErrorString"),
			createTensor:  s.get("cudnnCreateTensorDescriptor"),
			setTensor4dEx: s.get("cudnnSetTensor4dDescriptorEx"),
			destroyTensor: s.get("cudnnDestroyTensorDescriptor"),
			createFilter:  s.get("cudnnCreateFilterDescriptor"),
			setFilter4d:   s.get("cudnnSetFilter4dDescriptor"),
			destroyFilter: s.get("cudnnDestroyFilterDescriptor"),
			createConv:    s.get("cudnnCreateConvolutionDescriptor"),
			setConv2d:     s.get("cudnnSetConvolution2dDescriptor"),
			setConvMath:   s.get("cudnnSetConvolutionMathType"),
			destroyConv:   s.get("cudnnDestroyConvolutionDescriptor"),
			fwdAlgo:       s.get("cudnnGetConvolutionForwardAlgorithm_v7"),
			fwdWS:         s.get("cudnnGetConvolutionForwardWorkspaceSize"),
			fwd:           s.get("cudnnConvolutionForward"),
			bwdDataAlgo:   s.get("cudnnGetConvolutionBackwardDataAlgorithm_v7"),
			bwdDataWS:     s.get("cudnnGetConvolutionBackwardDataWorkspaceSize"),
			bwdData:       s.get("cudnnConvolutionBackwardData"),
			bwdFilterAlgo: s.get("cudnnGetConvolutionBackwardFilterAlgorithm_v7"),
			bwdFilterWS:   s.get("cudnnGetConvolutionBackwardFilterWorkspaceSize"),
			bwdFilter:     s.get("cudnnConvolutionBackwardFilter"),
		}
		a.findFwd = s.optional("cudnnFindConvolutionForwardAlgorithmEx")
		a.findBwdData = s.optional("cudnnFindConvolutionBackwardDataAlgorithmEx")
		a.findBwdFilter = s.optional("cudnnFindConvolutionBackwardFilterAlgorithmEx")
		if s.err != nil {
			return nil, s.err
		}
		return a, nil
	})
}

// call calls fn and turns a failure status into an error naming the call.
//
// uintptr(unsafe.Pointer(&x)) written in a call's argument list keeps x alive
// and in place until the call returns (go:uintptrescapes).
//
//go:uintptrescapes
func (a *dnnAPI) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if st := int(int32(r)); st != 0 {
		p, _, _ := purego.SyscallN(a.errString, uintptr(st))
		return fmt.Errorf("cuda: %s: cudnnStatus %d: %s", name, st, gostring(bytePtr(p)))
	}
	return nil
}

// Convolution directions.
const (
	convFwd = iota
	convBwdData
	convBwdFilter
)

// convGeom is a convolution in cuDNN's terms: 4D x and y with explicit strides (so the
// temporal convolution's (B, T, C, P) layout needs no copy), a (K, C, KH, KW) filter.
type convGeom struct {
	n, c, h, w int
	k, kh, kw  int
	oh, ow     int
	padH, padW int
	strH, strW int
	xStr, yStr [4]int
	dir        int
	tf32       bool
	// dt is the cuDNN type of x, y and the filter (dnnDataFloat, or
	// dnnDataHalf / dnnDataBFloat16 with float32 accumulation: cuDNN's
	// PSEUDO_HALF / PSEUDO_BFLOAT16 configurations); nhwc stores the
	// filter (K, KH, KW, C) (x and y say their layout by their strides).
	dt   int
	nhwc bool
}

// half reports whether g runs on 16-bit operands (tensor cores, any math
// type cuDNN lists).
func (g convGeom) half() bool { return g.dt != dnnDataFloat }

// convPlan is the cached cuDNN setup for one geometry and direction.
type convPlan struct {
	x, y, f, conv uintptr
	algo          int32
	ws            int64
	math          int32 // the math type listed for algo
	found         bool  // chosen by timing (cudnnFind...Ex), not heuristics
}

// dnnState is the device's cuDNN handle and plan cache; nil when cuDNN is absent.
type dnnState struct {
	api   *dnnAPI
	h     uintptr
	mu    sync.Mutex
	plans map[convGeom]*convPlan
	bad   map[convGeom]error // geometries cuDNN refused: use im2col
	calls int64
	// findOn times the algorithms on first use (cudnnFind...AlgorithmEx) instead of
	// trusting the heuristics, in strict float32 (where the timed choice, Winograd,
	// beat the heuristics' and PyTorch's by up to 3.6x on an H100) and, with
	// findTF32, also in TF32 (where the heuristics' choice was as fast or faster, up to
	// 1.7x; bench/RESULTS.md). PIPELINE_CUDNN_FIND=0 turns timing off, =all on for both.
	findOn, findTF32 bool
	// deterministic skips the algorithms cuDNN marks non-deterministic (some
	// backward-data and backward-filter ones accumulate with atomics), so two
	// runs of the same step give the same bits (PIPELINE_CUDNN_DETERMINISTIC=1;
	// as PyTorch's cudnn.deterministic). Off by default: the fastest algorithm wins.
	deterministic bool
}

// findWorkspaces are the scratch sizes offered to cudnnFind, largest first.
var findWorkspaces = []int64{512 << 20, 128 << 20, 0}

// findAlgos times every algorithm for g on the caller's buffers (whose outputs it
// overwrites) and fills perf, fastest first.
func (st *dnnState) findAlgos(d *Device, g convGeom, p *convPlan, x, y, f uintptr, perf []byte, n *int32) error {
	a := st.api
	var ws *Buffer
	for _, size := range findWorkspaces {
		if size == 0 {
			break
		}
		if b, err := d.alloc.get(size); err == nil {
			ws = b
			break
		}
	}
	var wsPtr, wsSize uintptr
	if ws != nil {
		wsPtr, wsSize = ws.Ptr, uintptr(ws.Size)
		defer d.alloc.drop(d, ws)
	}
	switch g.dir {
	case convFwd:
		return a.call("cudnnFindConvolutionForwardAlgorithmEx", a.findFwd, st.h, p.x, x, p.f, f, p.conv, p.y, y,
			dnnMaxAlgos, uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&perf[0])), wsPtr, wsSize)
	case convBwdData:
		return a.call("cudnnFindConvolutionBackwardDataAlgorithmEx", a.findBwdData, st.h, p.f, f, p.y, y, p.conv, p.x, x,
			dnnMaxAlgos, uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&perf[0])), wsPtr, wsSize)
	default:
		return a.call("cudnnFindConvolutionBackwardFilterAlgorithmEx", a.findBwdFilter, st.h, p.x, x, p.y, y, p.conv, p.f, f,
			dnnMaxAlgos, uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&perf[0])), wsPtr, wsSize)
	}
}

func newDNN(d *Device) *dnnState {
	api, err := loadDNN()
	if err != nil {
		d.log.Warn("cuda: cuDNN not loaded; convolutions use im2col and cuBLAS", slog.Any("err", err))
		return nil
	}
	st := &dnnState{api: api, plans: map[convGeom]*convPlan{}, bad: map[convGeom]error{},
		findOn:        os.Getenv("PIPELINE_CUDNN_FIND") != "0" && api.findFwd != 0 && api.findBwdData != 0 && api.findBwdFilter != 0,
		findTF32:      os.Getenv("PIPELINE_CUDNN_FIND") == "all",
		deterministic: os.Getenv("PIPELINE_CUDNN_DETERMINISTIC") == "1"}
	if err := api.call("cudnnCreate", api.create, uintptr(unsafe.Pointer(&st.h))); err != nil {
		d.log.Warn("cuda: cuDNN handle not created; convolutions use im2col and cuBLAS", slog.Any("err", err))
		return nil
	}
	if err := api.call("cudnnSetStream", api.setStream, st.h, d.stream); err != nil {
		api.call("cudnnDestroy", api.destroy, st.h)
		d.log.Warn("cuda: cuDNN stream not set; convolutions use im2col and cuBLAS", slog.Any("err", err))
		return nil
	}
	return st
}

func (st *dnnState) close() {
	for _, p := range st.plans {
		st.api.destroyPlan(p)
	}
	st.api.call("cudnnDestroy", st.api.destroy, st.h)
}

func (a *dnnAPI) destroyPlan(p *convPlan) {
	if p.x != 0 {
		a.call("", a.destroyTensor, p.x)
	}
	if p.y != 0 {
		a.call("", a.destroyTensor, p.y)
	}
	if p.f != 0 {
		a.call("", a.destroyFilter, p.f)
	}
	if p.conv != 0 {
		a.call("", a.destroyConv, p.conv)
	}
}

// plan returns the cached plan for g, building it on first use; an error means cuDNN
// cannot run g and the caller falls back to im2col.
func (st *dnnState) plan(d *Device, g convGeom, x, y, f uintptr) (*convPlan, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if p, ok := st.plans[g]; ok {
		return p, nil
	}
	if err, ok := st.bad[g]; ok {
		return nil, err
	}
	p, err := st.build(d, g, x, y, f)
	if err != nil {
		st.bad[g] = err
		d.log.Warn("cuda: cuDNN declined a convolution geometry; it uses im2col and cuBLAS", slog.String("geometry", fmt.Sprintf("%+v", g)), slog.Any("err", err))
		return nil, err
	}
	st.plans[g] = p
	return p, nil
}

func (st *dnnState) build(d *Device, g convGeom, x, y, f uintptr) (_ *convPlan, err error) {
	a := st.api
	p := &convPlan{}
	defer func() {
		if err != nil {
			a.destroyPlan(p)
		}
	}()
	for _, desc := range []*uintptr{&p.x, &p.y} {
		if err := a.call("cudnnCreateTensorDescriptor", a.createTensor, uintptr(unsafe.Pointer(desc))); err != nil {
			return nil, err
		}
	}
	if err := a.call("cudnnSetTensor4dDescriptorEx x", a.setTensor4dEx, p.x, uintptr(g.dt),
		uintptr(g.n), uintptr(g.c), uintptr(g.h), uintptr(g.w),
		uintptr(g.xStr[0]), uintptr(g.xStr[1]), uintptr(g.xStr[2]), uintptr(g.xStr[3])); err != nil {
		return nil, err
	}
	if err := a.call("cudnnSetTensor4dDescriptorEx y", a.setTensor4dEx, p.y, uintptr(g.dt),
		uintptr(g.n), uintptr(g.k), uintptr(g.oh), uintptr(g.ow),
		uintptr(g.yStr[0]), uintptr(g.yStr[1]), uintptr(g.yStr[2]), uintptr(g.yStr[3])); err != nil {
		return nil, err
	}
	if err := a.call("cudnnCreateFilterDescriptor", a.createFilter, uintptr(unsafe.Pointer(&p.f))); err != nil {
		return nil, err
	}
	format := uintptr(dnnTensorNCHW)
	if g.nhwc {
		format = dnnTensorNHWC
	}
	if err := a.call("cudnnSetFilter4dDescriptor", a.setFilter4d, p.f, uintptr(g.dt), format,
		uintptr(g.k), uintptr(g.c), uintptr(g.kh), uintptr(g.kw)); err != nil {
		return nil, err
	}
	if err := a.call("cudnnCreateConvolutionDescriptor", a.createConv, uintptr(unsafe.Pointer(&p.conv))); err != nil {
		return nil, err
	}
	if err := a.call("cudnnSetConvolution2dDescriptor", a.setConv2d, p.conv, uintptr(g.padH), uintptr(g.padW),
		uintptr(g.strH), uintptr(g.strW), 1, 1, dnnCrossCorrelation, dnnDataFloat); err != nil {
		return nil, err
	}
	math := uintptr(dnnFMAMath)
	loose := g.tf32 || g.half() // any math type the list names is acceptable
	switch {
	case g.half():
		// 16-bit operands reach the tensor cores only under TENSOR_OP math
		// (PyTorch sets it for half and bfloat16 too); under DEFAULT the
		// search offers CUDA-core kernels alone (7x slower, measured).
		math = dnnTensorOpMath
	case loose:
		math = dnnDefaultMath
	}
	if err := a.call("cudnnSetConvolutionMathType", a.setConvMath, p.conv, math); err != nil {
		return nil, err
	}
	perf := make([]byte, dnnMaxAlgos*dnnPerfBytes)
	var n int32
	if st.findOn && x != 0 && (!g.tf32 || st.findTF32 || g.half()) {
		// Time the candidates on the real buffers once, as PyTorch's cudnn.benchmark does.
		if ferr := st.findAlgos(d, g, p, x, y, f, perf, &n); ferr == nil && n > 0 {
			p.found = true
		} else {
			d.log.Debug("cuda: cuDNN find failed; using heuristics", slog.Any("err", ferr))
			n = 0
		}
	}
	switch {
	case p.found:
	case g.dir == convFwd:
		err = a.call("cudnnGetConvolutionForwardAlgorithm_v7", a.fwdAlgo, st.h, p.x, p.f, p.conv, p.y, dnnMaxAlgos, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&perf[0])))
	case g.dir == convBwdData:
		err = a.call("cudnnGetConvolutionBackwardDataAlgorithm_v7", a.bwdDataAlgo, st.h, p.f, p.y, p.conv, p.x, dnnMaxAlgos, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&perf[0])))
	default:
		err = a.call("cudnnGetConvolutionBackwardFilterAlgorithm_v7", a.bwdFilterAlgo, st.h, p.x, p.y, p.conv, p.f, dnnMaxAlgos, uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&perf[0])))
	}
	if err != nil {
		return nil, err
	}
	// The list (timed or heuristic) is best first; take the first that works and fits. In strict
	// float32 the descriptor stays on FMA math: first look for an algorithm the list
	// itself marks FMA, then accept any other under the FMA descriptor.
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < int(n); i++ {
			rec := perf[i*dnnPerfBytes : (i+1)*dnnPerfBytes]
			algo := int32(binary.LittleEndian.Uint32(rec[0:]))
			status := int32(binary.LittleEndian.Uint32(rec[4:]))
			mem := int64(binary.LittleEndian.Uint64(rec[16:]))
			determinism := int32(binary.LittleEndian.Uint32(rec[24:]))
			mathType := int32(binary.LittleEndian.Uint32(rec[28:]))
			if status != 0 || mem > dnnMaxWorkspace || (!loose && pass == 0 && mathType != dnnFMAMath) ||
				(st.deterministic && determinism != dnnDeterministic) {
				continue
			}
			if g.half() && mathType == dnnDefaultMath {
				mathType = dnnTensorOpMath
			}
			if loose {
				if err := a.call("cudnnSetConvolutionMathType", a.setConvMath, p.conv, uintptr(mathType)); err != nil {
					return nil, err
				}
			}
			var ws uintptr
			switch g.dir {
			case convFwd:
				err = a.call("cudnnGetConvolutionForwardWorkspaceSize", a.fwdWS, st.h, p.x, p.f, p.conv, p.y, uintptr(algo), uintptr(unsafe.Pointer(&ws)))
			case convBwdData:
				err = a.call("cudnnGetConvolutionBackwardDataWorkspaceSize", a.bwdDataWS, st.h, p.f, p.y, p.conv, p.x, uintptr(algo), uintptr(unsafe.Pointer(&ws)))
			default:
				err = a.call("cudnnGetConvolutionBackwardFilterWorkspaceSize", a.bwdFilterWS, st.h, p.x, p.y, p.conv, p.f, uintptr(algo), uintptr(unsafe.Pointer(&ws)))
			}
			if err != nil || int64(ws) > dnnMaxWorkspace {
				continue
			}
			p.algo, p.ws, p.math = algo, int64(ws), mathType
			return p, nil
		}
		if loose {
			break
		}
	}
	return nil, fmt.Errorf("cuda: cuDNN offers no usable algorithm for %+v (of %d)", g, n)
}

// run executes a planned convolution: fwd y = conv(x, f); bwd data x = convᵀ(y, f);
// bwd filter f = corr(x, y). Pointers by role; the context must be current.
func (d *Device) dnnRun(p *convPlan, g convGeom, x, y, f uintptr) error {
	st := d.dnn
	var ws uintptr
	if p.ws > 0 {
		b, err := d.alloc.get(p.ws)
		if err != nil {
			return err
		}
		defer b.Free()
		ws = b.Ptr
	}
	alpha, beta := float32(1), float32(0)
	a := st.api
	st.mu.Lock()
	st.calls++
	st.mu.Unlock()
	switch g.dir {
	case convFwd:
		return a.call("cudnnConvolutionForward", a.fwd, st.h, uintptr(unsafe.Pointer(&alpha)), p.x, x, p.f, f, p.conv, uintptr(p.algo), ws, uintptr(p.ws), uintptr(unsafe.Pointer(&beta)), p.y, y)
	case convBwdData:
		return a.call("cudnnConvolutionBackwardData", a.bwdData, st.h, uintptr(unsafe.Pointer(&alpha)), p.f, f, p.y, y, p.conv, uintptr(p.algo), ws, uintptr(p.ws), uintptr(unsafe.Pointer(&beta)), p.x, x)
	default:
		return a.call("cudnnConvolutionBackwardFilter", a.bwdFilter, st.h, uintptr(unsafe.Pointer(&alpha)), p.x, x, p.y, y, p.conv, uintptr(p.algo), ws, uintptr(p.ws), uintptr(unsafe.Pointer(&beta)), p.f, f)
	}
}

// tryDNN runs g through cuDNN when it is enabled and accepts g; ran is false when the
// caller must use its own kernels.
func (d *Device) tryDNN(g convGeom, x, y, f uintptr) (ran bool, err error) {
	if d.dnn == nil || !d.useDNN {
		return false, nil
	}
	g.tf32 = d.opts.TF32
	p, perr := d.dnn.plan(d, g, x, y, f)
	if perr != nil {
		return false, nil
	}
	return true, d.dnnRun(p, g, x, y, f)
}

// CUDNN reports whether convolutions go to cuDNN, and how many cuDNN convolutions ran.
func (d *Device) CUDNN() (on bool, calls int64) {
	if d.dnn == nil {
		return false, 0
	}
	d.dnn.mu.Lock()
	defer d.dnn.mu.Unlock()
	return d.useDNN, d.dnn.calls
}

// conv2dGeom is the cuDNN geometry of a 2D convolution over N NCHW frames.
func conv2dGeom(s nn.Conv2DShape, dir int) convGeom {
	oh, ow := s.OutH(), s.OutW()
	return convGeom{n: s.N, c: s.C, h: s.H, w: s.W, k: s.K, kh: s.KH, kw: s.KW, oh: oh, ow: ow,
		padH: s.Pad, padW: s.Pad, strH: s.Stride, strW: s.Stride,
		xStr: [4]int{s.C * s.H * s.W, s.H * s.W, s.W, 1}, yStr: [4]int{s.K * oh * ow, oh * ow, ow, 1}, dir: dir}
}
