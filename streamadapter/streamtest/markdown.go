package streamtest

import (
	"bytes"
	"strings"

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
	switch {
	case text == "":
		return ""
	case plain(text):
		return "<p>" + string(util.EscapeHTML([]byte(text))) + "</p>\n"
	}
	return renderMarkdown(text)
}

func renderMarkdown(text string) string {
	var out bytes.Buffer
	if err := markdown.Convert([]byte(text), &out); err != nil {
		// goldmark fails only when the writer does, which a buffer does not.
		return "<p>" + string(util.EscapeHTML([]byte(text))) + "</p>\n"
	}
	return out.String()
}

// plain reports whether markdown would render text as one paragraph of
// itself: a single line of letters, digits, spaces and punctuation that
// CommonMark gives no meaning, starting with a letter and not ending in a
// space. Ciphertext is such text; it skips the parser, which costs 40
// times more (FuzzRenderHTML checks that both agree).
func plain(text string) bool {
	if c := text[0] | 0x20; c < 'a' || c > 'z' || text[len(text)-1] == ' ' {
		return false
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case 'a' <= c|0x20 && c|0x20 <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte(" +/=:.,;?@%$'\"-", c) < 0:
			return false
		}
	}
	return true
}
