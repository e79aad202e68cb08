package streamtest

import (
	"bytes"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/util"
)

// markdown renders a message's text to its html field as Stream does:
// CommonMark (emphasis, links, code, lists, quotes), with HTML written in
// the text shown as text rather than passed through. A goldmark.Markdown
// is safe for concurrent use.
var markdown = goldmark.New(goldmark.WithRendererOptions(
	renderer.WithNodeRenderers(util.Prioritized(escapeRawHTML{}, 100)),
))

// escapeRawHTML renders raw HTML (inline and blocks) escaped, in place of
// goldmark's default of omitting it: a chat message that says "<b>" shows
// "<b>".
type escapeRawHTML struct{}

// RegisterFuncs registers the escaping renderers, which take precedence
// over goldmark's (priority 100 < 1000).
func (escapeRawHTML) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindRawHTML, func(w util.BufWriter, source []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			segs := n.(*ast.RawHTML).Segments
			for i := range segs.Len() {
				seg := segs.At(i)
				w.Write(util.EscapeHTML(seg.Value(source)))
			}
		}
		return ast.WalkSkipChildren, nil
	})
	reg.Register(ast.KindHTMLBlock, func(w util.BufWriter, source []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkSkipChildren, nil
		}
		b := n.(*ast.HTMLBlock)
		var text []byte
		lines := b.Lines()
		for i := range lines.Len() {
			line := lines.At(i)
			text = append(text, line.Value(source)...)
		}
		if b.HasClosure() {
			text = append(text, b.ClosureLine.Value(source)...)
		}
		w.WriteString("<p>")
		w.Write(util.EscapeHTML(bytes.TrimRight(text, "\n")))
		w.WriteString("</p>\n")
		return ast.WalkSkipChildren, nil
	})
}

func renderHTML(text string) string {
	if text == "" {
		return ""
	}
	var out bytes.Buffer
	if err := markdown.Convert([]byte(text), &out); err != nil {
		// goldmark fails only when the writer does, which a buffer does not.
		return "<p>" + string(util.EscapeHTML([]byte(text))) + "</p>\n"
	}
	return out.String()
}
