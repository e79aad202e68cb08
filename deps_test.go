package veil_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const module = "github.com/veilchat/veil"

// clientPackages are linked into apps on users' devices. Each is checked for
// the server-side dependencies in forbiddenInClients, directly or through any
// chain of imports (tests' own imports excepted: they are never linked into
// an app). A line naming a package that does not exist fails the test, so a
// line is added here when its package is created, not before.
var clientPackages = []struct {
	name   string // import path below the module root
	reason string
	allow  []string // names of forbiddenInClients rules that do not apply, with the reason in a comment
}{
	{name: "e2ee", reason: "the encryption API, which every app links"},
	{name: "session", reason: "the epoch keys and envelopes under e2ee"},
	{name: "identity", reason: "the device identities and cards every client uses"},
	{name: "keyservice", reason: "the key service's client, which every app links"},
	{name: "twoman", reason: "the device half of two-man-rule recovery"},
	// stream-chat-go/v6 imports github.com/golang-jwt/jwt/v4 to sign
	// requests with the app's secret: the adapter runs where that secret
	// is (a backend, a bot), which signs tokens anyway. Every other rule
	// holds.
	{name: "streamadapter", reason: "the wrapper around stream-chat-go that bots and backends link", allow: []string{"JWT"}},
}

// forbiddenImport is an import path, matching itself and every path below
// it, that some packages must not link.
type forbiddenImport struct {
	name   string
	prefix string
	reason string
}

func (f forbiddenImport) matches(path string) bool {
	return path == f.prefix || strings.HasPrefix(path, f.prefix+"/")
}

// forbiddenInClients are the imports a client must not link.
var forbiddenInClients = []forbiddenImport{
	{name: "database/sql", prefix: "database/sql", reason: "SQL storage is a server's; a client keeps its state behind interfaces its app implements"},
	{name: "SQLite driver", prefix: "modernc.org/sqlite", reason: "a database driver is a server's, and this one adds megabytes to every app"},
	{name: "SQLite cgo driver", prefix: "github.com/mattn/go-sqlite3", reason: "a database driver is a server's, and this one needs cgo"},
	{name: "pgx", prefix: "github.com/jackc/pgx", reason: "a PostgreSQL driver is a server's"},
	{name: "lib/pq", prefix: "github.com/lib/pq", reason: "a PostgreSQL driver is a server's"},
	{name: "MySQL driver", prefix: "github.com/go-sql-driver/mysql", reason: "a database driver is a server's"},
	{name: "Prometheus", prefix: "github.com/prometheus", reason: "metrics are exported by servers; an app has no scrape endpoint"},
	{name: "JWT", prefix: "github.com/golang-jwt", reason: "only a server signs tokens; a client sends the token its app gives it"},
	{name: "key service server", prefix: module + "/keyservice/server", reason: "the key service's handler, auth and stores run on a server"},
	{name: "SSKS", prefix: module + "/twoman/ssks", reason: "the secure key storage service runs on a server"},
	{name: "app backend", prefix: module + "/twoman/backend", reason: "the app backend's half of recovery runs on a server"},
	{name: "SQL store helpers", prefix: module + "/internal/sqlstore", reason: "SQL storage is a server's"},
	{name: "PostgreSQL test helper", prefix: module + "/internal/pgtest", reason: "a test helper for servers' stores"},
	{name: "commands", prefix: module + "/cmd", reason: "a command is a program, never a library"},
}

// TestClientDependencies fails when a client package links a server-side
// dependency, naming the chain of imports that pulls it in.
func TestClientDependencies(t *testing.T) {
	t.Parallel()
	paths := make([]string, len(clientPackages))
	for i, c := range clientPackages {
		paths[i] = module + "/" + c.name
	}
	graph := loadImportGraph(t, paths...)
	for i, c := range clientPackages {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rules := slices.DeleteFunc(slices.Clone(forbiddenInClients), func(f forbiddenImport) bool { return slices.Contains(c.allow, f.name) })
			for _, h := range graph.forbidden(t, paths[i], rules) {
				t.Errorf("%s links %s through\n\t%s\n%s; %s is %s", c.name, h.name,
					strings.Join(h.chain, "\n\t-> "), h.reason, c.name, c.reason)
			}
		})
	}
}

// TestClientDependenciesCatch runs the walk of TestClientDependencies from
// server packages, where it must find what they link: a walk that finds
// nothing there is blind, and its silence about the clients means nothing.
// Each case checks for some rules only, since a server package is itself
// forbidden and the walk stops at the first forbidden package on a chain.
func TestClientDependenciesCatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string // import path below the module root
		rules  []string
		want   []string
		reason string
	}{
		{
			name:   "keyservice/server",
			rules:  []string{"database/sql", "JWT", "Prometheus", "pgx", "SQLite driver", "lib/pq"},
			want:   []string{"database/sql", "JWT", "Prometheus", "pgx", "SQLite driver"},
			reason: "the key service links SQL stores through internal/sqlstore, JWT verification and metrics, but not lib/pq",
		},
		{
			name:   "twoman/ssks",
			rules:  []string{"SSKS", "database/sql"},
			want:   []string{"SSKS"},
			reason: "a forbidden package is reported itself, and the walk does not go on into what it imports",
		},
		{
			name:   "cmd/veil",
			rules:  []string{"commands", "key service server"},
			want:   []string{"commands"},
			reason: "the package checked is caught when it is itself forbidden",
		},
	}
	paths := make([]string, len(tests))
	for i, tt := range tests {
		paths[i] = module + "/" + tt.name
	}
	graph := loadImportGraph(t, paths...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rules []forbiddenImport
			for _, f := range forbiddenInClients {
				if slices.Contains(tt.rules, f.name) {
					rules = append(rules, f)
				}
			}
			if len(rules) != len(tt.rules) {
				t.Fatalf("rules %q: some are not in forbiddenInClients", tt.rules)
			}
			got := []string{}
			for _, h := range graph.forbidden(t, paths[i], rules) {
				if !slices.Contains(got, h.name) {
					got = append(got, h.name)
				}
				if h.chain[0] != paths[i] || !h.matches(h.chain[len(h.chain)-1]) {
					t.Errorf("%s: chain %q does not lead from %s to %s", h.name, h.chain, paths[i], h.prefix)
				}
				for j := 1; j < len(h.chain); j++ {
					if !slices.Contains(graph[h.chain[j-1]].Imports, h.chain[j]) {
						t.Errorf("%s: chain %q: %s does not import %s", h.name, h.chain, h.chain[j-1], h.chain[j])
					}
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rules reported (-want +got):\n%s\n%s", diff, tt.reason)
			}
		})
	}
}

// importGraph is what go list reports about a set of packages and everything
// they import.
type importGraph map[string]listedPackage

type listedPackage struct {
	ImportPath string
	Imports    []string
	Error      *struct{ Err string }
}

// loadImportGraph runs go list over paths and their dependencies.
func loadImportGraph(t *testing.T, paths ...string) importGraph {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the tests it runs,
	// so this finds the go command that is running the test.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not available, so imports cannot be listed: %v", err)
	}
	cmd := exec.Command(goCmd, append([]string{"list", "-e", "-deps", "-json=ImportPath,Imports,Error"}, paths...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	graph := importGraph{}
	dec := json.NewDecoder(&stdout)
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		graph[p.ImportPath] = p
	}
	return graph
}

// hit is a forbidden package reached from a checked one.
type hit struct {
	forbiddenImport
	chain []string // import paths from the checked package to the forbidden one
}

// forbidden walks root's imports breadth first, so each chain reported is a
// shortest one, and reports every package it reaches that rules forbid,
// without walking on into that package's imports (they would only repeat
// the same news). It fails the test if root cannot be loaded.
func (g importGraph) forbidden(t *testing.T, root string, rules []forbiddenImport) []hit {
	t.Helper()
	p, ok := g[root]
	switch {
	case !ok:
		t.Fatalf("%s: not listed by go list", root)
	case p.Error != nil:
		t.Fatalf("%s cannot be loaded (if it was renamed or removed, change its line; a package not written yet has none): %s", root, p.Error.Err)
	}
	var hits []hit
	parent := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if i := slices.IndexFunc(rules, func(f forbiddenImport) bool { return f.matches(path) }); i >= 0 {
			var chain []string
			for q := path; q != ""; q = parent[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			hits = append(hits, hit{rules[i], chain})
			continue
		}
		for _, imp := range g[path].Imports {
			if _, seen := parent[imp]; !seen {
				parent[imp] = path
				queue = append(queue, imp)
			}
		}
	}
	return hits
}
