//go:build !amd64

package nn

func siluForwardVec(y, x []float32) int       { return 0 }
func siluBackwardVec(dx, dy, x []float32) int { return 0 }
