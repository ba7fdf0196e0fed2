//go:build !unix

package shards

import "os"

// mapFile reads path into memory (no mmap on this platform).
func mapFile(path string) (data []byte, unmap func() error, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
