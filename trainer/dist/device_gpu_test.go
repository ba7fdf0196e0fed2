//go:build gpu

package dist

import (
	"context"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// TestNCCLOnDeviceWorldOne: the binding against the real libnccl on device
// pointers: ncclCommInitRank with nranks 1 (the id by value), a bucketed
// all-reduce fed through DeviceReducer, and the staged broadcast.
func TestNCCLOnDeviceWorldOne(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	t.Setenv(NCCLEnv, "1")
	dev, err := cuda.Open(0, cuda.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	g, err := Join(context.Background(), Env{World: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	v, _ := g.api.version()
	t.Logf("NCCL %s version %d", g.api.path, v)
	mem, err := NewDeviceMemory(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := g.Open(mem); err != nil {
		t.Fatal(err)
	}
	vals := [][]float32{{1, 2, 3}, make([]float32, 300000), {-4}}
	vals[1][299999] = 7
	var ts []*cuda.Tensor
	var sizes []int
	for _, x := range vals {
		tt, err := dev.FromHost(x)
		if err != nil {
			t.Fatal(err)
		}
		defer tt.Free()
		ts, sizes = append(ts, tt), append(sizes, len(x))
	}
	red := NewReducer(g.comm, sizes, 1<<10)
	dr, err := NewDeviceReducer(red, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	for i := len(ts) - 1; i >= 0; i-- {
		ev, err := dev.NewEvent()
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Destroy()
		if err := ev.Record(nil); err != nil {
			t.Fatal(err)
		}
		if err := dr.Ready(i, ts[i], ev); err != nil {
			t.Fatal(err)
		}
	}
	done, err := dr.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if err := done.Sync(); err != nil {
		t.Fatal(err)
	}
	for i, tt := range ts {
		got := make([]float32, tt.Len())
		if err := tt.Download(got); err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if got[j] != vals[i][j] {
				t.Fatalf("tensor %d[%d] = %v after the average over one rank, want %v", i, j, got[j], vals[i][j])
			}
		}
	}
	params := [][]float32{{5, 6}, {7}}
	if err := g.BroadcastParams(params); err != nil {
		t.Fatal(err)
	}
	if params[0][1] != 6 || params[1][0] != 7 {
		t.Fatalf("broadcast from rank 0 to itself changed %v", params)
	}
}
