package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"mvdan.cc/sh/v3/syntax"
	"sigs.k8s.io/yaml"
)

// The README and docs/ are followed to the letter by newcomers: every shell
// command in their fenced blocks that runs this binary must name a
// subcommand and flags it has, every `make` target must exist, every
// `helm --set` key must be a chart value. Renaming a flag without the docs
// fails here.
func TestDocumentedCommandsExist(t *testing.T) {
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	targets := makeTargets(t)
	values := chartValues(t)
	checked := 0
	for _, doc := range docs {
		for _, block := range shellBlocks(t, doc) {
			name := filepath.Base(doc) + ":" + block.line
			file, err := syntax.NewParser(syntax.KeepComments(false)).Parse(strings.NewReader(block.text), name)
			if err != nil {
				t.Errorf("%s: not a shell command as written: %v", name, err)
				continue
			}
			syntax.Walk(file, func(node syntax.Node) bool {
				call, ok := node.(*syntax.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				args := literalWords(call.Args)
				if len(args) == 0 {
					return true
				}
				switch filepath.Base(args[0]) {
				case "integration-operator":
					checked++
					checkBinaryCall(t, name, args[1:])
				case "make":
					checked++
					for _, a := range args[1:] {
						if !strings.Contains(a, "=") && !strings.HasPrefix(a, "-") && !targets[a] {
							t.Errorf("%s: make target %q does not exist", name, a)
						}
					}
				case "helm":
					checked++
					for i, a := range args {
						if a == "--set" && i+1 < len(args) {
							for _, kv := range helmSetPairs(args[i+1]) {
								if key, _, _ := strings.Cut(kv, "="); !hasValue(values, key) {
									t.Errorf("%s: helm --set %s is not a value of the chart", name, key)
								}
							}
						}
					}
				}
				return true
			})
		}
	}
	// Commands quoted in the prose too: `integration-operator produce --store ...`.
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inlineCommand.FindAllStringSubmatch(string(data), -1) {
			checked++
			checkBinaryCall(t, filepath.Base(doc)+": `"+m[0]+"`", strings.Fields(m[1]))
		}
	}
	if checked < 10 {
		t.Fatalf("only %d documented commands found; is the parsing broken?", checked)
	}
}

// checkBinaryCall checks `integration-operator <subcommand> --flag ...`.
func checkBinaryCall(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		return
	}
	root := newRootCommand()
	cmd, rest, err := root.Find(args)
	if err != nil || cmd == root {
		t.Errorf("%s: integration-operator %s: no such subcommand", where, args[0])
		return
	}
	for _, a := range rest {
		if !strings.HasPrefix(a, "--") || a == "--" {
			continue
		}
		flag, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !hasFlag(cmd, flag) {
			t.Errorf("%s: integration-operator %s has no flag --%s", where, cmd.Name(), flag)
		}
	}
}

func hasFlag(cmd *cobra.Command, name string) bool {
	return name == "help" || cmd.Flags().Lookup(name) != nil || cmd.InheritedFlags().Lookup(name) != nil
}

// literalWords returns each word as written; a word with an expansion
// ($VAR, $(...)) is kept with the expansion as "$", enough for a flag name.
func literalWords(words []*syntax.Word) []string {
	out := make([]string, 0, len(words))
	for _, w := range words {
		var b strings.Builder
		for _, part := range w.Parts {
			switch p := part.(type) {
			case *syntax.Lit:
				b.WriteString(p.Value)
			case *syntax.SglQuoted:
				b.WriteString(p.Value)
			case *syntax.DblQuoted:
				for _, q := range p.Parts {
					if lit, ok := q.(*syntax.Lit); ok {
						b.WriteString(lit.Value)
					} else {
						b.WriteString("$")
					}
				}
			default:
				b.WriteString("$")
			}
		}
		out = append(out, b.String())
	}
	return out
}

type shellBlock struct{ line, text string }

// shellBlocks returns the fenced ```sh and ```bash blocks of a Markdown file.
func shellBlocks(t *testing.T, path string) []shellBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []shellBlock
	var cur *strings.Builder
	var start string
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		switch {
		case cur == nil && (line == "```sh" || line == "```bash" || line == "```shell"):
			cur, start = &strings.Builder{}, strconv.Itoa(n)
		case cur != nil && line == "```":
			blocks = append(blocks, shellBlock{line: start, text: cur.String()})
			cur = nil
		case cur != nil:
			cur.WriteString(sc.Text())
			cur.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

var inlineCommand = regexp.MustCompile("`integration-operator ([a-z][^`]*)`")

var makeTarget = regexp.MustCompile(`^([a-zA-Z0-9][a-zA-Z0-9_-]*):`)

func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := makeTarget.FindStringSubmatch(line); m != nil {
			targets[m[1]] = true
		}
	}
	return targets
}

func chartValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../../charts/integration-operator/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	return values
}

// helmSetPairs splits a --set argument at the commas between pairs, not
// those of a {a,b} list.
func helmSetPairs(arg string) []string {
	var pairs []string
	depth, start := 0, 0
	for i, c := range arg {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				pairs = append(pairs, arg[start:i])
				start = i + 1
			}
		}
	}
	return append(pairs, arg[start:])
}

// hasValue reports whether the dotted key names a value of the chart; below
// a map value given as {} (selectors, labels) any key is allowed.
func hasValue(values map[string]any, key string) bool {
	var cur any = values
	for _, part := range strings.Split(key, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if len(m) == 0 {
			return true
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}
