package dist

import (
	"runtime"
	"testing"

	"github.com/ebitengine/purego"
	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
)

// TestCommInitRankTakesTheIDByValue: on amd64 the 128-byte ncclUniqueId
// goes on the stack, so a binding that passes a pointer to it hands
// ncclCommInitRank garbage (the stand-in refuses it), while the by-value
// binding of nccl.go is accepted.
func TestCommInitRankTakesTheIDByValue(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the by-pointer mistake shows on amd64 (arm64 passes large structs by reference)")
	}
	dir := disttest.BuildStandin(t)
	h, err := purego.Dlopen(dir+"/libnccl.so.2", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := purego.Dlsym(h, "ncclCommInitRank")
	if err != nil {
		t.Fatal(err)
	}
	var getID func(*UniqueID) int32
	purego.RegisterLibFunc(&getID, h, "ncclGetUniqueId")
	var id UniqueID
	if r := getID(&id); r != 0 {
		t.Fatalf("ncclGetUniqueId: %d", r)
	}
	var byPointer func(comm *uintptr, nranks int32, id *UniqueID, rank int32) int32
	purego.RegisterFunc(&byPointer, fn)
	var comm uintptr
	if r := byPointer(&comm, 1, &id, 0); r == 0 {
		t.Fatal("the stand-in accepted an id passed by pointer")
	}
	var byValue func(comm *uintptr, nranks int32, id UniqueID, rank int32) int32
	purego.RegisterFunc(&byValue, fn)
	if r := byValue(&comm, 1, id, 0); r != 0 {
		t.Fatalf("by value: NCCL error %d", r)
	}
	var destroy func(uintptr) int32
	purego.RegisterLibFunc(&destroy, h, "ncclCommDestroy")
	if r := destroy(comm); r != 0 {
		t.Fatalf("ncclCommDestroy: %d", r)
	}
}
