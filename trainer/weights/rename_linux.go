package weights

import "golang.org/x/sys/unix"

// renameNoReplace renames old to new, failing if new exists (even as an
// empty folder, which a plain rename would replace).
func renameNoReplace(old, new string) error {
	return unix.Renameat2(unix.AT_FDCWD, old, unix.AT_FDCWD, new, unix.RENAME_NOREPLACE)
}
