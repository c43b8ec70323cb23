/* A small, safe Markdown renderer for queue text, prompts and the narrative.
 *
 * Escape-first: the text is never parsed as HTML. Every piece becomes a text node inside an
 * element built here (p, ul/ol/li, pre/code, code, strong, a), so agent- or graph-supplied text
 * cannot inject markup. Supported: fenced code blocks (```), paragraphs (blank-line separated),
 * "- " / "* " / "1. " lists, `code spans`, **bold**, and [links](https://…) — only http(s)
 * targets become links; anything else stays text.
 */
(function () {
  "use strict";

  const SR = window.SR;
  const { el } = SR;

  const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|\[([^\]\n]+)\]\(([^)\s]+)\)/g;

  function safeHref(href) {
    return /^https?:\/\/[^\s]+$/i.test(href) ? href : null;
  }

  // one line (or a paragraph's lines) into inline nodes
  function inline(text) {
    const out = [];
    let last = 0;
    INLINE.lastIndex = 0;
    let match;
    while ((match = INLINE.exec(text)) !== null) {
      if (match.index > last) out.push(document.createTextNode(text.slice(last, match.index)));
      if (match[1]) out.push(el("code", { text: match[2].replace(/^ (.*) $/, "$1") }));
      else if (match[3]) out.push(el("strong", { text: match[3] }));
      else {
        const href = safeHref(match[5]);
        out.push(href ? el("a", { href, rel: "noopener noreferrer", target: "_blank", text: match[4] }) : document.createTextNode(match[0]));
      }
      last = INLINE.lastIndex;
    }
    if (last < text.length) out.push(document.createTextNode(text.slice(last)));
    return out;
  }

  const BULLET = /^\s*[-*]\s+(.*)$/;
  const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;
  const FENCE = /^\s*```/;

  // block structure: fences, lists, paragraphs; returns a fragment of block elements
  function markdown(text) {
    const fragment = document.createDocumentFragment();
    const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    let para = [];
    const flush = () => {
      if (!para.length) return;
      const p = el("p");
      para.forEach((line, n) => { if (n) p.append(el("br")); p.append(...inline(line)); });
      fragment.append(p);
      para = [];
    };
    while (i < lines.length) {
      const line = lines[i];
      if (FENCE.test(line)) {
        flush();
        const body = [];
        i += 1;
        while (i < lines.length && !FENCE.test(lines[i])) { body.push(lines[i]); i += 1; }
        i += 1;  // the closing fence (or the end)
        fragment.append(el("pre", { class: "md-pre" }, el("code", { text: body.join("\n") })));
        continue;
      }
      const bullet = BULLET.exec(line), numbered = NUMBERED.exec(line);
      if (bullet || numbered) {
        flush();
        const pattern = bullet ? BULLET : NUMBERED;
        const list = el(bullet ? "ul" : "ol");
        while (i < lines.length && pattern.test(lines[i])) {
          list.append(el("li", {}, ...inline(pattern.exec(lines[i])[1])));
          i += 1;
        }
        fragment.append(list);
        continue;
      }
      if (!line.trim()) flush();
      else para.push(line);
      i += 1;
    }
    flush();
    return fragment;
  }

  Object.assign(SR, { markdown, markdownInline: inline });
})();
