package cuda

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keepAliveCallees are the functions whose uintptr arguments keep Go memory
// alive across the C call: purego.SyscallN and this package's wrappers, all
// marked //go:uintptrescapes.
var keepAliveCallees = map[string]bool{"SyscallN": true, "call": true, "raw": true}

// Go memory handed to C as a uintptr is only kept alive (and in place) when
// the conversion uintptr(unsafe.Pointer(&x)) is written in the argument list
// of a //go:uintptrescapes function. This test reads the sources of
// trainer/cuda and trainer/gpu and fails on any such conversion elsewhere
// (a helper like ptr(&x) that returns a bare uintptr lets the collector free
// x during the call) and on a wrapper that lacks the directive.
func TestGoMemoryStaysAliveAcrossCCalls(t *testing.T) {
	if _, err := os.Stat("liveness_test.go"); err != nil {
		t.Skip("not run from the package folder")
	}
	files := 0
	for _, dir := range []string{".", "../gpu"} {
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			files++
			checkLiveness(t, path)
		}
	}
	if files < 10 {
		t.Fatalf("read only %d files", files)
	}
}

func checkLiveness(t *testing.T, path string) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || !keepAliveCallees[fd.Name.Name] || fd.Recv == nil {
			continue
		}
		if fd.Doc == nil || !strings.Contains(fd.Doc.Text()+directives(fd.Doc), "go:uintptrescapes") {
			t.Errorf("%s: %s passes uintptr arguments to C but lacks //go:uintptrescapes", fset.Position(fd.Pos()), fd.Name.Name)
		}
	}
	// allowed holds the conversions written directly as an argument of a keep-alive callee.
	allowed := map[ast.Expr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok || !keepAliveCallees[calleeName(c)] {
			return true
		}
		for _, a := range c.Args {
			allowed[a] = true
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok || !isUintptrOfPointer(c) || allowed[c] {
			return true
		}
		t.Errorf("%s: uintptr(unsafe.Pointer(...)) outside the argument list of a //go:uintptrescapes call: nothing keeps the memory alive", fset.Position(c.Pos()))
		return true
	})
}

// directives returns the //go: lines of a comment group (Text drops them).
func directives(g *ast.CommentGroup) string {
	var b strings.Builder
	for _, c := range g.List {
		if strings.HasPrefix(c.Text, "//go:") {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func calleeName(c *ast.CallExpr) string {
	switch f := c.Fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// isUintptrOfPointer matches uintptr(unsafe.Pointer(x)).
func isUintptrOfPointer(c *ast.CallExpr) bool {
	id, ok := c.Fun.(*ast.Ident)
	if !ok || id.Name != "uintptr" || len(c.Args) != 1 {
		return false
	}
	inner, ok := c.Args[0].(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := inner.Fun.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Pointer"
}
