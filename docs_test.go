package veil_test

// The Go code of the Markdown docs (README.md, SECURITY.md, CONTRIBUTING.md,
// docs/*.md and any other .md file of the repository) compiles: each Go
// block is either a run of lines of a _test.go file, which go test and go
// vet compile, or a complete Go file that go vet checks here.

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file  string   // the Markdown file, relative to the repository root
	line  int      // the line of the opening fence, from 1
	lang  string   // the first word of the fence's info string ("" if none)
	lines []string // the block's lines, without the fences
}

func (b docBlock) String() string {
	return fmt.Sprintf("%s:%d", b.file, b.line)
}

// TestDocGoBlocks checks every Go block of the repository's Markdown files:
// a block is a run of consecutive lines of some _test.go file (leading tabs
// aside), or a complete Go file (it starts with its package clause) that
// go vet accepts. It also requires every fenced block to name its language,
// so that Go code cannot hide in a block that nothing checks: text,
// sh, mermaid and the like are not Go.
func TestDocGoBlocks(t *testing.T) {
	docs, err := markdownFiles(".")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := testFileLines(".")
	if err != nil {
		t.Fatal(err)
	}
	goBlocks := 0
	for _, name := range docs {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := fencedBlocks(name, src)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, b := range blocks {
			switch b.lang {
			case "":
				t.Errorf("%v: a fenced block names no language: Go there would go unchecked (use go, text, sh, ...)", b)
			case "go":
				goBlocks++
				if err := checkGoBlock(t, b, tests); err != nil {
					t.Errorf("%v: %v", b, err)
				}
			}
		}
	}
	// README.md's code tour and docs/STREAM.md's guide alone hold more.
	if goBlocks < 10 {
		t.Fatalf("found %d Go blocks in %d Markdown files: too few for the check to mean anything", goBlocks, len(docs))
	}
}

// TestDocGoBlockCheck shows that checkGoBlock rejects what it must: a block
// changed from its example, and a complete file that does not compile.
func TestDocGoBlockCheck(t *testing.T) {
	tests := map[string][]string{"x_test.go": trimTabs(strings.Split("func f() {\n\tx := 1\n\t_ = x\n}\n", "\n"))}
	for _, tc := range []struct {
		name   string
		block  string
		ok     bool
		reason string
	}{
		{name: "in an example", block: "x := 1\n_ = x", ok: true,
			reason: "consecutive lines of a _test.go file, leading tabs aside, compile with it"},
		{name: "changed", block: "x := 2\n_ = x", ok: false,
			reason: "a block edited away from its example is no longer checked by the compiler"},
		{name: "not consecutive", block: "x := 1\n}", ok: false,
			reason: "lines of a file that do not follow each other there are not that file's code"},
		{name: "complete file", ok: true,
			block:  "// Command hello greets.\npackage main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }",
			reason: "a complete file that go vet accepts compiles"},
		{name: "complete file importing veil", ok: true,
			block:  "package main\n\nimport \"github.com/veilchat/veil/identity\"\n\nfunc main() { _, _ = identity.Generate(nil, \"alice\", identity.Options{}) }",
			reason: "a complete file sees the module's packages, as an app's code would"},
		{name: "complete file that does not compile", ok: false,
			block:  "package main\n\nfunc main() { undefined() }",
			reason: "go vet type-checks the file"},
		{name: "complete file go vet rejects", ok: false,
			block:  "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Printf(\"%d\", \"x\") }",
			reason: "the block is vetted, not only built"},
		{name: "fragment", block: "y := 1", ok: false,
			reason: "a fragment in no example compiles nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := docBlock{file: "doc.md", line: 1, lang: "go", lines: strings.Split(tc.block, "\n")}
			err := checkGoBlock(t, b, tests)
			if (err == nil) != tc.ok {
				t.Errorf("checkGoBlock(%q) = %v, want ok=%v: %s", tc.block, err, tc.ok, tc.reason)
			}
		})
	}
}

// TestFencedBlocks checks the fence parser on the shapes the docs use.
func TestFencedBlocks(t *testing.T) {
	src := "text\n```go\na\n\tb\n```\n\n1. item\n\n   ```sh\n   go test\n   ```\n```\nplain\n```\n"
	blocks, err := fencedBlocks("doc.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []docBlock{
		{file: "doc.md", line: 2, lang: "go", lines: []string{"a", "\tb"}},
		{file: "doc.md", line: 9, lang: "sh", lines: []string{"go test"}},
		{file: "doc.md", line: 12, lang: "", lines: []string{"plain"}},
	}
	if diff := cmp.Diff(want, blocks, cmp.AllowUnexported(docBlock{})); diff != "" {
		t.Errorf("fencedBlocks (-want +got):\n%s", diff)
	}
	if _, err := fencedBlocks("doc.md", []byte("```go\nfunc f() {}\n")); err == nil {
		t.Error("an unclosed fence was accepted: the rest of the file would go unchecked")
	}
}

// checkGoBlock returns nil if b is a run of lines of one of the test files
// (their lines without leading tabs, by name), or a complete Go file that go
// vet accepts.
func checkGoBlock(t *testing.T, b docBlock, tests map[string][]string) error {
	t.Helper()
	run := trimTabs(b.lines)
	for _, lines := range tests {
		if containsRun(lines, run) {
			return nil
		}
	}
	if !isGoFile(b.lines) {
		return fmt.Errorf("this Go block is in no _test.go file (as consecutive lines) and is not a complete Go file:\n%s",
			strings.Join(b.lines, "\n"))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "block.go")
	if err := os.WriteFile(file, []byte(strings.Join(b.lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	// Run from the repository root: the file's imports of the module's
	// packages resolve against this module and its go.sum.
	cmd := exec.Command("go", "vet", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("this Go file does not pass go vet (%v):\n%s", err, strings.ReplaceAll(out.String(), file, "block.go"))
	}
	return nil
}

// isGoFile reports whether lines start, after comments and blank lines,
// with a package clause.
func isGoFile(lines []string) bool {
	for _, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "//"):
			continue
		case strings.HasPrefix(l, "package "):
			return true
		default:
			return false
		}
	}
	return false
}

// fencedBlocks returns the fenced code blocks of a Markdown file. A fence is
// a line of three or more backticks, indented or not; a block's lines lose
// the indentation of its opening fence.
func fencedBlocks(name string, src []byte) ([]docBlock, error) {
	var (
		blocks []docBlock
		open   *docBlock
		indent string
	)
	for i, line := range strings.Split(string(src), "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		if open == nil {
			if strings.HasPrefix(trimmed, "```") {
				info := strings.Fields(strings.TrimLeft(trimmed, "`"))
				open = &docBlock{file: name, line: i + 1}
				if len(info) > 0 {
					open.lang = info[0]
				}
				indent = line[:len(line)-len(trimmed)]
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") && strings.TrimSpace(strings.TrimLeft(trimmed, "`")) == "" {
			blocks = append(blocks, *open)
			open = nil
			continue
		}
		open.lines = append(open.lines, strings.TrimPrefix(line, indent))
	}
	if open != nil {
		return nil, fmt.Errorf("%v: a fenced block is never closed", *open)
	}
	return blocks, nil
}

// markdownFiles returns the .md files below root, skipping the directories
// the go command skips (testdata and names starting with . or _).
func markdownFiles(root string) ([]string, error) {
	var names []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skippedDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".md") {
			names = append(names, path)
		}
		return nil
	})
	return names, err
}

// testFileLines returns the lines, without leading tabs, of every _test.go
// file below root that the go command compiles (bench/, a module of its
// own, included: CI tests it too).
func testFileLines(root string) (map[string][]string, error) {
	files := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skippedDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[path] = trimTabs(strings.Split(string(src), "\n"))
		return nil
	})
	return files, err
}

// skippedDir reports whether the go command ignores a directory of this
// name.
func skippedDir(name string) bool {
	return name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}
