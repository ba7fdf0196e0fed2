//go:build !linux

package weights

import (
	"fmt"
	"os"
)

// renameNoReplace renames old to new unless new exists (checked first: not
// atomic outside Linux).
func renameNoReplace(old, new string) error {
	if _, err := os.Lstat(new); err == nil {
		return fmt.Errorf("%s exists", new)
	}
	return os.Rename(old, new)
}
