//! A tiny namespace-aware XML reader and writer for WebDAV / CalDAV bodies.
//!
//! WebDAV servers disagree on everything cosmetic — prefixes (`D:`, `d:`, `ns0:`), default
//! namespaces, CDATA versus escaped text, where the `sync-token` sits — so the reader resolves
//! every element to a `(namespace, local name)` pair and callers match on that only.
//!
//! The reader is deliberately small and strict about the things that matter for safety:
//! DOCTYPEs are skipped and never expanded (no entity expansion of any kind beyond the five
//! predefined entities and character references), nesting depth is limited, the parse loop is
//! iterative, and every malformed input yields a positioned [`XmlError`] instead of a panic.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// The WebDAV namespace (RFC 4918).
pub const DAV: &str = "DAV:";
/// The CalDAV namespace (RFC 4791).
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// The CalendarServer extensions namespace (`getctag`, …).
pub const CALSERVER: &str = "http://calendarserver.org/ns/";
/// Apple's iCal extensions namespace (`calendar-color`, `calendar-order`).
pub const ICAL: &str = "http://apple.com/ns/ical/";

/// The namespace bound to the reserved `xml` prefix (XML Namespaces §3).
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Deepest element nesting the reader accepts. Real multistatus bodies are < 10 deep; the
/// limit keeps hostile input from building trees whose recursive `Drop`/`Clone` could overflow.
pub const MAX_DEPTH: usize = 256;

/// Most attributes (namespace declarations included) one start tag may carry. WebDAV
/// elements carry a handful; a root element rarely declares more than 20 namespaces. The
/// limit keeps a hostile element (80,000 attributes in 789 KB) from costing ~100 bytes of
/// memory per source byte.
pub const MAX_ATTRIBUTES: usize = 1_000;

/// Most nodes (elements plus attributes) the reader holds in memory at once: the whole
/// tree for [`parse`], one child of the root for [`parse_streaming`]. A node costs ~150
/// bytes however short its source (`<a/>` is 4 bytes), so this bounds a tree to ~15 MB. A
/// multistatus `<response>` has ~10 nodes; a document of 10,000 of them is read with
/// [`parse_streaming`], which holds one at a time.
pub const MAX_HELD_NODES: usize = 100_000;

/// An element with its namespace resolved.
///
/// `text` is the concatenated character data directly inside the element (entities decoded,
/// CDATA included), untrimmed; whitespace between child elements is part of it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI; empty when the element is in no namespace.
    ///
    /// Shared with the declaration and every element in its scope: copied per element, a
    /// long URI declared once would cost its length again for each element under it.
    pub ns: Arc<str>,
    /// Local name (without prefix).
    pub name: String,
    /// Attributes as `(qualified name as written, decoded value)`, `xmlns` declarations excluded.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Character data directly inside this element.
    pub text: String,
}

/// A parse error with the 1-based line and column (in characters) where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for XmlError {}

impl Element {
    /// A new empty element in namespace `ns` (use `""` for none).
    pub fn new(ns: &str, name: &str) -> Element {
        Element {
            ns: Arc::from(ns),
            name: name.to_string(),
            ..Element::default()
        }
    }

    /// Whether this element is `name` in namespace `ns`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        &*self.ns == ns && self.name == name
    }

    /// The first child named `name` in namespace `ns`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// All children named `name` in namespace `ns`, in document order.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The text with surrounding whitespace removed.
    pub fn text_trimmed(&self) -> &str {
        self.text.trim()
    }

    /// The value of the attribute written as `qname` (e.g. `"name"`), if present.
    pub fn attr(&self, qname: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == qname)
            .map(|(_, v)| v.as_str())
    }

    /// Builder: append a child element.
    pub fn with_child(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    /// Builder: append text.
    pub fn with_text(mut self, text: &str) -> Element {
        self.text.push_str(text);
        self
    }

    /// Builder: add an unprefixed attribute (e.g. `name="VEVENT"` on `comp-filter`).
    pub fn with_attr(mut self, name: &str, value: &str) -> Element {
        self.attrs.push((name.to_string(), value.to_string()));
        self
    }

    /// Serialize as a complete document: XML declaration, then this element.
    ///
    /// Prefixes are fixed for the well-known namespaces (`d` for `DAV:`, `c` for CalDAV, `cs`
    /// for CalendarServer, `ic` for Apple iCal) and `n0`, `n1`, … for others; all declarations
    /// go on the root. Output is compact (no indentation) so that `parse(to_xml(e)) == e`.
    /// Text is written before the children.
    pub fn to_xml(&self) -> String {
        let mut namespaces: Vec<String> = Vec::new();
        collect_namespaces(self, &mut namespaces);
        let mut others = 0usize;
        let prefixes: Vec<(String, String)> = namespaces
            .into_iter()
            .map(|ns| {
                let prefix = match ns.as_str() {
                    DAV => "d".to_string(),
                    CALDAV => "c".to_string(),
                    CALSERVER => "cs".to_string(),
                    ICAL => "ic".to_string(),
                    _ => {
                        others += 1;
                        format!("n{}", others - 1)
                    }
                };
                (ns, prefix)
            })
            .collect();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        write_element(self, &prefixes, true, &mut out);
        out
    }
}

/// Namespaces used by element names in `e`'s tree, in first-appearance order.
fn collect_namespaces(e: &Element, out: &mut Vec<String>) {
    if !e.ns.is_empty() && !out.iter().any(|n| **n == *e.ns) {
        out.push(e.ns.to_string());
    }
    for c in &e.children {
        collect_namespaces(c, out);
    }
}

fn write_element(e: &Element, prefixes: &[(String, String)], root: bool, out: &mut String) {
    let qname = match prefixes.iter().find(|(ns, _)| **ns == *e.ns) {
        Some((_, p)) => format!("{}:{}", p, e.name),
        None => e.name.clone(),
    };
    out.push('<');
    out.push_str(&qname);
    if root {
        for (ns, p) in prefixes {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
            out.push_str(&escape_attr(ns));
            out.push('"');
        }
    }
    for (k, v) in &e.attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(&escape_attr(v));
        out.push('"');
    }
    if e.children.is_empty() && e.text.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    out.push_str(&escape_text(&e.text));
    for c in &e.children {
        write_element(c, prefixes, false, out);
    }
    out.push_str("</");
    out.push_str(&qname);
    out.push('>');
}

/// Escape the five XML special characters `& < > " '`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not an XML 1.0 Char (§2.2), not even as a reference: a server must refuse
            // the document (Radicale answers MKCALENDAR 400), so such characters are dropped.
            c if !is_xml_char(c) => {}
            _ => out.push(ch),
        }
    }
    out
}

/// Text escaping that also survives a reader's line-end normalisation: a literal CR would be
/// read back as LF, so iCalendar's CRLF line ends are written as `&#13;` + LF.
fn escape_text(s: &str) -> String {
    escape(s).replace('\r', "&#13;")
}

/// Attribute escaping: readers turn literal tab/CR/LF in attribute values into spaces
/// (XML 1.0 §3.3.3), so those are written as character references.
fn escape_attr(s: &str) -> String {
    escape(s)
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
}

/// Parse a document and return its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let src = input.strip_prefix('\u{FEFF}').unwrap_or(input);
    Parser::new(src).document(None)
}

/// Parse a document, handing each child element of the root to `visit` as soon as its end
/// tag has been read, instead of attaching it to the root. `visit` gets the root (its
/// attributes and the text read so far, no children), the child, and the byte range of the
/// child's source in `input`. Returns the root, childless.
///
/// Memory held at once is one child, not the whole tree, so a 30 MB multistatus costs the
/// caller only what it keeps of each `<response>`. The range lets a caller relate a child
/// to positions in the input (e.g. bytes that were not UTF-8 before decoding).
pub fn parse_streaming(
    input: &str,
    visit: &mut dyn FnMut(&Element, Element, Range<usize>),
) -> Result<Element, XmlError> {
    let (src, offset) = match input.strip_prefix('\u{FEFF}') {
        Some(rest) => (rest, '\u{FEFF}'.len_utf8()),
        None => (input, 0),
    };
    let mut shifted = |root: &Element, child: Element, span: Range<usize>| {
        visit(root, child, span.start + offset..span.end + offset)
    };
    Parser::new(src).document(Some(&mut shifted))
}

/// Receives the children of the root in [`parse_streaming`].
type Sink<'v> = Option<&'v mut dyn FnMut(&Element, Element, Range<usize>)>;

/// A start tag's attributes as [`Parser::tag_attributes`] reads them.
struct TagAttributes<'a> {
    /// Ordinary attributes (qualified name, value), in document order.
    attrs: Vec<(String, String)>,
    /// `xmlns` / `xmlns:p` declarations (prefix, namespace), in document order.
    declarations: Vec<(&'a str, String)>,
    /// Whether the tag ended with `/>`.
    self_closing: bool,
}

/// An element whose end tag has not been seen yet.
struct Open {
    element: Element,
    /// The name as written, for matching the end tag.
    qname: String,
    /// How many namespace bindings this element pushed.
    bindings: usize,
    /// Byte offset of its `<`.
    start: usize,
    /// Nodes (elements and attributes) in its subtree, itself included.
    nodes: usize,
}

/// The namespace prefixes in scope: each prefix maps to its bindings, innermost last, so
/// a lookup costs one hash probe however many declarations are in scope.
struct Scopes {
    by_prefix: HashMap<String, Vec<Arc<str>>>,
    /// "" (no namespace) and the `xml` prefix's namespace, shared like declared ones.
    none: Arc<str>,
    xml: Arc<str>,
    /// Prefixes in declaration order, to undo an element's declarations at its end.
    declared: Vec<String>,
}

impl Scopes {
    fn new() -> Scopes {
        Scopes {
            by_prefix: HashMap::new(),
            none: Arc::from(""),
            xml: Arc::from(XML_NS),
            declared: Vec::new(),
        }
    }

    fn push(&mut self, prefix: &str, ns: Arc<str>) {
        self.by_prefix
            .entry(prefix.to_string())
            .or_default()
            .push(ns);
        self.declared.push(prefix.to_string());
    }

    /// Undo the last `n` declarations.
    fn pop(&mut self, n: usize) {
        for _ in 0..n {
            let Some(prefix) = self.declared.pop() else {
                return;
            };
            if let Some(stack) = self.by_prefix.get_mut(&prefix) {
                stack.pop();
                if stack.is_empty() {
                    self.by_prefix.remove(&prefix);
                }
            }
        }
    }

    /// Namespace bound to `prefix`; the unprefixed default is "" (no namespace) when
    /// undeclared.
    fn resolve(&self, prefix: &str) -> Option<&Arc<str>> {
        if prefix == "xml" {
            return Some(&self.xml);
        }
        match self.by_prefix.get(prefix).and_then(|s| s.last()) {
            Some(ns) if prefix.is_empty() || !ns.is_empty() => Some(ns),
            // `xmlns:p=""` un-declares p (Namespaces 1.1); treat p as unknown from there on.
            Some(_) => None,
            None if prefix.is_empty() => Some(&self.none),
            None => None,
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset into `src`; always on a char boundary.
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser { src, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn starts_with(&self, s: &str) -> bool {
        // On bytes: the DOCTYPE scan steps byte-wise and may stand inside a character.
        self.bytes()[self.pos..].starts_with(s.as_bytes())
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> XmlError {
        // Clamp and back up to a char boundary so slicing can never panic.
        let mut pos = pos.min(self.src.len());
        while !self.src.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &self.src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        XmlError {
            line,
            column,
            message: message.into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> XmlError {
        self.error_at(self.pos, message)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.pos += 1;
        }
    }

    /// Advance past the next occurrence of `end`, or fail with `what` at `start`.
    fn skip_past(&mut self, end: &str, start: usize, what: &str) -> Result<&'a str, XmlError> {
        match self.rest().find(end) {
            Some(i) => {
                let body = &self.src[self.pos..self.pos + i];
                self.pos += i + end.len();
                Ok(body)
            }
            None => Err(self.error_at(start, format!("unterminated {what}"))),
        }
    }

    /// Skip comments and processing instructions (and whitespace) outside the root element.
    /// Returns false when something else comes next.
    fn skip_misc(&mut self) -> Result<bool, XmlError> {
        self.skip_ws();
        let start = self.pos;
        if self.starts_with("<!--") {
            self.pos += 4;
            self.skip_past("-->", start, "comment")?;
            Ok(true)
        } else if self.starts_with("<?") {
            self.pos += 2;
            self.skip_past("?>", start, "processing instruction")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Skip `<!DOCTYPE …>` including an internal subset. Nothing in it is interpreted: entity
    /// declarations are ignored, so references to them later fail as unknown entities.
    fn skip_doctype(&mut self) -> Result<(), XmlError> {
        let start = self.pos;
        self.pos += "<!DOCTYPE".len();
        let mut depth = 0usize;
        let mut quote: Option<u8> = None;
        while let Some(b) = self.peek() {
            if let Some(q) = quote {
                if b == q {
                    quote = None;
                }
                self.pos += 1;
                continue;
            }
            if self.starts_with("<!--") {
                let comment = self.pos;
                self.pos += 4;
                self.skip_past("-->", comment, "comment")?;
                continue;
            }
            match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b'>' if depth == 0 => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.error_at(start, "unterminated DOCTYPE"))
    }

    fn document(mut self, sink: Sink<'_>) -> Result<Element, XmlError> {
        let mut seen_doctype = false;
        loop {
            if self.skip_misc()? {
                continue;
            }
            if self.starts_with("<!DOCTYPE") {
                if seen_doctype {
                    return Err(self.error("second DOCTYPE"));
                }
                seen_doctype = true;
                self.skip_doctype()?;
                continue;
            }
            break;
        }
        if self.at_end() {
            return Err(self.error("empty document: no root element"));
        }
        if self.peek() != Some(b'<')
            || !self
                .bytes()
                .get(self.pos + 1)
                .is_some_and(|&b| is_name_start(b))
        {
            return Err(self.error("expected the root element"));
        }
        let root = self.elements(sink)?;
        while self.skip_misc()? {}
        if !self.at_end() {
            return Err(self.error("unexpected content after the root element"));
        }
        Ok(root)
    }

    /// Parse the root element and everything inside it, iteratively. With a sink, each
    /// finished child of the root goes there instead of into the root.
    fn elements(&mut self, mut sink: Sink<'_>) -> Result<Element, XmlError> {
        let mut stack: Vec<Open> = Vec::new();
        let mut scopes = Scopes::new();
        // Nodes of the tree held now (the root and its children not handed to the sink).
        let mut held = 0usize;
        loop {
            if self.at_end() {
                let open = stack.last().map_or("", |o| o.qname.as_str());
                return Err(self.error(format!("unexpected end of input inside <{open}>")));
            }
            let start = self.pos;
            let closed = if self.starts_with("</") {
                Some(self.end_tag(&mut stack)?)
            } else if self.starts_with("<!--") {
                self.pos += 4;
                self.skip_past("-->", start, "comment")?;
                None
            } else if self.starts_with("<?") {
                self.pos += 2;
                self.skip_past("?>", start, "processing instruction")?;
                None
            } else if self.starts_with("<![CDATA[") {
                self.pos += 9;
                let data = self.skip_past("]]>", start, "CDATA section")?;
                if let Some(top) = stack.last_mut() {
                    push_normalized(&mut top.element.text, data);
                }
                None
            } else if self.starts_with("<!") {
                return Err(self.error("unexpected markup declaration in content"));
            } else if self.starts_with("<") {
                if stack.len() >= MAX_DEPTH {
                    return Err(
                        self.error(format!("elements nested deeper than {MAX_DEPTH} levels"))
                    );
                }
                let (open, self_closing) = self.start_tag(&mut scopes)?;
                held += open.nodes;
                if held > MAX_HELD_NODES {
                    return Err(self.error_at(
                        start,
                        format!("more than {MAX_HELD_NODES} elements and attributes held at once"),
                    ));
                }
                if self_closing {
                    Some(open)
                } else {
                    stack.push(open);
                    None
                }
            } else {
                // Character data; only reachable with an open element.
                match stack.last_mut() {
                    Some(top) => self.char_data(&mut top.element.text)?,
                    None => return Err(self.error("character data outside the root element")),
                }
                None
            };
            let Some(open) = closed else { continue };
            scopes.pop(open.bindings);
            match (&mut sink, stack.len()) {
                (_, 0) => return Ok(open.element),
                (Some(visit), 1) => {
                    held -= open.nodes;
                    visit(&stack[0].element, open.element, open.start..self.pos);
                }
                _ => {
                    if let Some(parent) = stack.last_mut() {
                        parent.nodes += open.nodes;
                        parent.element.children.push(open.element);
                    }
                }
            }
        }
    }

    /// `</name>` at the current position: pops and returns the element it closes.
    fn end_tag(&mut self, stack: &mut Vec<Open>) -> Result<Open, XmlError> {
        let start = self.pos;
        self.pos += 2;
        let name = self.name()?;
        self.skip_ws();
        if self.peek() != Some(b'>') {
            return Err(self.error(format!("expected '>' to end </{name}")));
        }
        self.pos += 1;
        let Some(open) = stack.pop() else {
            return Err(self.error_at(start, "end tag without start tag"));
        };
        if open.qname != name {
            return Err(self.error_at(
                start,
                format!(
                    "mismatched end tag: expected </{}>, found </{name}>",
                    open.qname
                ),
            ));
        }
        Ok(open)
    }

    /// Parse `<name attr="v" …>` or `<name …/>`, pushing its namespace declarations.
    fn start_tag(&mut self, scopes: &mut Scopes) -> Result<(Open, bool), XmlError> {
        let tag_start = self.pos;
        self.pos += 1;
        let qname = self.name()?;
        let TagAttributes {
            attrs,
            declarations,
            self_closing,
        } = self.tag_attributes(tag_start, qname)?;
        let declared = declarations.len();
        for (prefix, ns) in declarations {
            scopes.push(prefix, Arc::from(ns));
        }
        let (ns, name) = match self.resolve_names(scopes, tag_start, qname, &attrs) {
            Ok(v) => v,
            Err(e) => {
                scopes.pop(declared);
                return Err(e);
            }
        };
        let nodes = 1 + attrs.len();
        let element = Element {
            ns,
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
        };
        let open = Open {
            element,
            qname: qname.to_string(),
            bindings: declared,
            start: tag_start,
            nodes,
        };
        Ok((open, self_closing))
    }

    /// The attributes of the start tag `<qname` (at `tag_start`), up to and including its
    /// `>` or `/>`.
    fn tag_attributes(
        &mut self,
        tag_start: usize,
        qname: &str,
    ) -> Result<TagAttributes<'a>, XmlError> {
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut declarations: Vec<(&'a str, String)> = Vec::new();
        // Attribute names seen in this tag: a linear scan while few, a hash set beyond, so
        // a tag with thousands of attributes costs linear time.
        let mut seen = Seen::default();
        let self_closing = loop {
            let before_ws = self.pos;
            self.skip_ws();
            match self.peek() {
                None => return Err(self.error_at(tag_start, format!("unterminated tag <{qname}"))),
                Some(b'>') => {
                    self.pos += 1;
                    break false;
                }
                Some(b'/') => {
                    if self.bytes().get(self.pos + 1) != Some(&b'>') {
                        return Err(self.error("expected '/>'"));
                    }
                    self.pos += 2;
                    break true;
                }
                Some(_) => {}
            }
            if self.pos == before_ws {
                return Err(self.error("expected whitespace before attribute"));
            }
            let attr_pos = self.pos;
            let key = self.name()?;
            self.skip_ws();
            if self.peek() != Some(b'=') {
                return Err(self.error(format!("expected '=' after attribute {key}")));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.attr_value()?;
            if !seen.insert(key) {
                return Err(self.error_at(attr_pos, format!("duplicate attribute {key}")));
            }
            if attrs.len() + declarations.len() >= MAX_ATTRIBUTES {
                return Err(self.error_at(
                    attr_pos,
                    format!("more than {MAX_ATTRIBUTES} attributes on <{qname}>"),
                ));
            }
            match xmlns_prefix(key) {
                Some(prefix) => declarations.push((prefix, value)),
                None => attrs.push((key.to_string(), value)),
            }
        };
        Ok(TagAttributes {
            attrs,
            declarations,
            self_closing,
        })
    }

    /// The element's namespace and local name; checks the attributes' prefixes.
    fn resolve_names(
        &self,
        scopes: &Scopes,
        tag_start: usize,
        qname: &str,
        attrs: &[(String, String)],
    ) -> Result<(Arc<str>, String), XmlError> {
        let (prefix, local) = split_qname(qname)
            .ok_or_else(|| self.error_at(tag_start, format!("malformed name {qname}")))?;
        let ns = scopes.resolve(prefix).ok_or_else(|| {
            self.error_at(tag_start, format!("unknown namespace prefix '{prefix}'"))
        })?;
        for (key, _) in attrs {
            let (p, _) = split_qname(key)
                .ok_or_else(|| self.error_at(tag_start, format!("malformed name {key}")))?;
            if !p.is_empty() && scopes.resolve(p).is_none_or(|n| n.is_empty()) {
                return Err(self.error_at(tag_start, format!("unknown namespace prefix '{p}'")));
            }
        }
        Ok((Arc::clone(ns), local.to_string()))
    }

    /// An XML name (prefix included), as written.
    fn name(&mut self) -> Result<&'a str, XmlError> {
        let start = self.pos;
        match self.peek() {
            Some(b) if is_name_start(b) => self.pos += 1,
            Some(_) => return Err(self.error("expected a name")),
            None => return Err(self.error("unexpected end of input: expected a name")),
        }
        while let Some(b) = self.peek() {
            if is_name_char(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        // Name bytes are ASCII or complete UTF-8 sequences (all ≥ 0x80), so this is a char
        // boundary; the check is only defensive.
        self.src
            .get(start..self.pos)
            .ok_or_else(|| self.error_at(start, "malformed name"))
    }

    /// A quoted attribute value, entities decoded and whitespace normalised (XML 1.0 §3.3.3).
    fn attr_value(&mut self) -> Result<String, XmlError> {
        let start = self.pos;
        let quote = match self.peek() {
            Some(q @ (b'"' | b'\'')) => q,
            _ => return Err(self.error("expected a quoted attribute value")),
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let stop = rest
                .bytes()
                .position(|b| b == quote || matches!(b, b'&' | b'<' | b'\t' | b'\r' | b'\n'));
            let Some(i) = stop else {
                return Err(self.error_at(start, "unterminated attribute value"));
            };
            out.push_str(&rest[..i]);
            self.pos += i;
            match self.bytes()[self.pos] {
                b'&' => out.push(self.reference()?),
                b'<' => return Err(self.error("'<' in attribute value")),
                b'\r' => {
                    self.pos += 1;
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(' ');
                }
                b'\t' | b'\n' => {
                    self.pos += 1;
                    out.push(' ');
                }
                _ => {
                    self.pos += 1;
                    return Ok(out);
                }
            }
        }
    }

    /// Character data up to the next `<`, references decoded, line ends normalised,
    /// appended to `out` (no intermediate copy: calendar data can be megabytes).
    fn char_data(&mut self, out: &mut String) -> Result<(), XmlError> {
        loop {
            let rest = self.rest();
            let i = rest
                .bytes()
                .position(|b| matches!(b, b'<' | b'&' | b'\r'))
                .unwrap_or(rest.len());
            out.push_str(&rest[..i]);
            self.pos += i;
            match self.peek() {
                Some(b'&') => out.push(self.reference()?),
                Some(b'\r') => {
                    self.pos += 1;
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push('\n');
                }
                _ => return Ok(()),
            }
        }
    }

    /// `&name;` or `&#N;` / `&#xH;` at the current position.
    fn reference(&mut self) -> Result<char, XmlError> {
        let start = self.pos;
        self.pos += 1;
        // Entity names and references are short; don't scan megabytes for a ';'.
        let rest = self.rest();
        let window = &rest.as_bytes()[..rest.len().min(32)];
        let Some(semi) = window.iter().position(|&b| b == b';') else {
            return Err(self.error_at(start, "unterminated entity reference"));
        };
        let body = &rest[..semi];
        let ch = if let Some(num) = body.strip_prefix('#') {
            let value = match num.strip_prefix('x') {
                Some(hex) if is_digits(hex, 16) => u32::from_str_radix(hex, 16).ok(),
                None if is_digits(num, 10) => num.parse::<u32>().ok(),
                _ => None,
            };
            match value.and_then(char::from_u32).filter(|&c| is_xml_char(c)) {
                Some(c) => c,
                None => {
                    return Err(
                        self.error_at(start, format!("invalid character reference &{body};"))
                    )
                }
            }
        } else {
            match body {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => return Err(self.error_at(start, format!("unknown entity &{body};"))),
            }
        };
        self.pos += semi + 1;
        Ok(ch)
    }
}

/// The prefix an `xmlns` / `xmlns:p` attribute declares (`""` for the default namespace).
fn xmlns_prefix(key: &str) -> Option<&str> {
    if key == "xmlns" {
        Some("")
    } else {
        key.strip_prefix("xmlns:")
    }
}

/// Split `p:local` into `("p", "local")`, or `local` into `("", "local")`.
fn split_qname(qname: &str) -> Option<(&str, &str)> {
    match qname.split_once(':') {
        None => Some(("", qname)),
        Some((p, l)) if !p.is_empty() && !l.is_empty() && !l.contains(':') => Some((p, l)),
        Some(_) => None,
    }
}

/// Attribute names of one start tag, for the duplicate check.
#[derive(Default)]
struct Seen<'a> {
    few: Vec<&'a str>,
    many: HashSet<&'a str>,
}

impl<'a> Seen<'a> {
    /// Below this many names a linear scan beats hashing.
    const LINEAR: usize = 8;

    /// Records `name`; false when it was seen before.
    fn insert(&mut self, name: &'a str) -> bool {
        if self.few.len() < Self::LINEAR {
            if self.few.contains(&name) {
                return false;
            }
            self.few.push(name);
            return true;
        }
        if self.many.is_empty() {
            self.many.extend(self.few.iter().copied());
        }
        self.many.insert(name)
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

fn is_digits(s: &str, radix: u32) -> bool {
    !s.is_empty() && s.len() <= 8 && s.chars().all(|c| c.is_digit(radix))
}

/// The `Char` production of XML 1.0 (§2.2).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Append `s` with CRLF and lone CR turned into LF, as an XML reader must (§2.11).
fn push_normalized(out: &mut String, s: &str) {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RADICALE: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/"><sync-token>http://radicale.org/ns/sync/2b3f1a4e5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f</sync-token><response><href>/alice/work/</href><propstat><prop><CS:getctag>"2b3f1a4e5c6d7e8f"</CS:getctag><displayname>Work</displayname></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/alice/work/ev1.ics</href><propstat><prop><getetag>"1c2e3f4a"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/alice/work/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response></multistatus>"#;

    const XANDIKOS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ns0:multistatus xmlns:ns0="DAV:" xmlns:ns1="urn:ietf:params:xml:ns:caldav">
  <ns0:response>
    <ns0:href>/user/calendars/calendar/a%20b.ics</ns0:href>
    <ns0:propstat>
      <ns0:status>HTTP/1.1 200 OK</ns0:status>
      <ns0:prop>
        <ns0:getetag>"6c4a9e1d0f"</ns0:getetag>
      </ns0:prop>
    </ns0:propstat>
  </ns0:response>
  <ns0:sync-token>8d3b2f0c4e1a9d7b6c5e4f3a2b1c0d9e8f7a6b5c</ns0:sync-token>
</ns0:multistatus>
"#;

    const SABRE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:s="http://sabredav.org/ns" xmlns:cal="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">
 <d:response>
  <d:href>/calendars/alice/default/</d:href>
  <d:propstat>
   <d:prop>
    <cs:getctag>42</cs:getctag>
    <d:resourcetype><d:collection/><cal:calendar/></d:resourcetype>
    <cal:supported-calendar-component-set><cal:comp name="VEVENT"/><cal:comp name='VTODO'/></cal:supported-calendar-component-set>
   </d:prop>
   <d:status>HTTP/1.1 200 OK</d:status>
  </d:propstat>
  <d:propstat>
   <d:prop>
    <d:sync-token/>
   </d:prop>
   <d:status>HTTP/1.1 404 Not Found</d:status>
  </d:propstat>
 </d:response>
</d:multistatus>
"#;

    const NEXTCLOUD: &str = "<?xml version=\"1.0\"?>\n<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" xmlns:cal=\"urn:ietf:params:xml:ns:caldav\" xmlns:cs=\"http://calendarserver.org/ns/\" xmlns:oc=\"http://owncloud.org/ns\" xmlns:nc=\"http://nextcloud.org/ns\"><d:response><d:href>/remote.php/dav/calendars/alice/personal/ev1.ics</d:href><d:propstat><d:prop><d:getetag>&quot;5f2c1a&quot;</d:getetag><cal:calendar-data>BEGIN:VCALENDAR&#13;\nVERSION:2.0&#13;\nBEGIN:VEVENT&#13;\nUID:ev1&#13;\nSUMMARY:Tom &amp; Jerry &lt;3&#13;\nEND:VEVENT&#13;\nEND:VCALENDAR&#13;\n</cal:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response><d:response><d:href>/remote.php/dav/calendars/alice/personal/ev2.ics</d:href><d:propstat><d:prop><d:getetag>\"77aa\"</d:getetag><cal:calendar-data><![CDATA[BEGIN:VCALENDAR\r\nSUMMARY:a <b> & c\r\nEND:VCALENDAR\r\n]]></cal:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>";

    fn err(input: &str) -> XmlError {
        match parse(input) {
            Ok(e) => panic!("expected an error for {input:?}, got {e:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn radicale_sync_token_before_responses() {
        let ms = parse(RADICALE).unwrap();
        assert!(ms.is(DAV, "multistatus"));
        assert_eq!(
            ms.child(DAV, "sync-token").unwrap().text_trimmed(),
            "http://radicale.org/ns/sync/2b3f1a4e5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
        );
        let responses: Vec<_> = ms.children_named(DAV, "response").collect();
        assert_eq!(responses.len(), 3);
        let prop = responses[0]
            .child(DAV, "propstat")
            .and_then(|p| p.child(DAV, "prop"))
            .unwrap();
        assert_eq!(
            prop.child(CALSERVER, "getctag").unwrap().text,
            "\"2b3f1a4e5c6d7e8f\""
        );
        assert_eq!(prop.child(DAV, "displayname").unwrap().text, "Work");
        assert_eq!(
            responses[2].child(DAV, "status").unwrap().text,
            "HTTP/1.1 404 Not Found"
        );
    }

    #[test]
    fn xandikos_sync_token_after_responses() {
        let ms = parse(XANDIKOS).unwrap();
        assert!(ms.is(DAV, "multistatus"));
        assert_eq!(
            ms.child(DAV, "sync-token").unwrap().text_trimmed(),
            "8d3b2f0c4e1a9d7b6c5e4f3a2b1c0d9e8f7a6b5c"
        );
        let r = ms.child(DAV, "response").unwrap();
        assert_eq!(
            r.child(DAV, "href").unwrap().text,
            "/user/calendars/calendar/a%20b.ics"
        );
        let etag = r
            .child(DAV, "propstat")
            .and_then(|p| p.child(DAV, "prop"))
            .and_then(|p| p.child(DAV, "getetag"))
            .unwrap();
        assert_eq!(etag.text, "\"6c4a9e1d0f\"");
        // Whitespace between elements is kept (untrimmed) as the parent's text.
        assert!(ms.text.contains('\n') && ms.text.trim().is_empty());
    }

    #[test]
    fn sabredav_prefixes_and_404_propstat() {
        let ms = parse(SABRE).unwrap();
        let r = ms.child(DAV, "response").unwrap();
        let propstats: Vec<_> = r.children_named(DAV, "propstat").collect();
        assert_eq!(propstats.len(), 2);
        let ok = propstats[0].child(DAV, "prop").unwrap();
        assert_eq!(ok.child(CALSERVER, "getctag").unwrap().text, "42");
        let rt = ok.child(DAV, "resourcetype").unwrap();
        assert!(rt.child(DAV, "collection").is_some());
        assert!(rt.child(CALDAV, "calendar").is_some());
        let comps: Vec<_> = ok
            .child(CALDAV, "supported-calendar-component-set")
            .unwrap()
            .children_named(CALDAV, "comp")
            .map(|c| c.attr("name").unwrap())
            .collect();
        assert_eq!(comps, ["VEVENT", "VTODO"]);
        assert_eq!(
            propstats[1].child(DAV, "status").unwrap().text,
            "HTTP/1.1 404 Not Found"
        );
        assert!(propstats[1]
            .child(DAV, "prop")
            .unwrap()
            .child(DAV, "sync-token")
            .is_some());
    }

    #[test]
    fn nextcloud_multiget_entities_and_cdata() {
        let ms = parse(NEXTCLOUD).unwrap();
        let data: Vec<(String, String)> = ms
            .children_named(DAV, "response")
            .map(|r| {
                let prop = r
                    .child(DAV, "propstat")
                    .unwrap()
                    .child(DAV, "prop")
                    .unwrap();
                (
                    prop.child(DAV, "getetag").unwrap().text.clone(),
                    prop.child(CALDAV, "calendar-data").unwrap().text.clone(),
                )
            })
            .collect();
        assert_eq!(data[0].0, "\"5f2c1a\"");
        assert_eq!(
            data[0].1,
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:ev1\r\nSUMMARY:Tom & Jerry <3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        assert_eq!(data[1].0, "\"77aa\"");
        // Literal CRLF is normalised to LF, as XML requires; the iCalendar parser accepts both.
        assert_eq!(
            data[1].1,
            "BEGIN:VCALENDAR\nSUMMARY:a <b> & c\nEND:VCALENDAR\n"
        );
    }

    #[test]
    fn default_namespace_scoping_and_redeclaration() {
        let doc = r#"<?xml version="1.0"?>
<!-- leading comment --><?pi stuff?>
<A:propfind xmlns:A="DAV:" xmlns="urn:other">
  <A:prop>
    <x/>
    <y xmlns="DAV:"><z/></y>
    <A:getetag xmlns:A="http://example.com/a"/>
    <q xmlns=""/>
  </A:prop>
  <A:href>after</A:href>
</A:propfind><!-- trailing --> "#;
        let root = parse(doc).unwrap();
        assert!(root.is(DAV, "propfind"));
        let prop = root.child(DAV, "prop").unwrap();
        let names: Vec<(&str, &str)> = prop
            .children
            .iter()
            .map(|c| (&*c.ns, c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("urn:other", "x"),
                ("DAV:", "y"),
                ("http://example.com/a", "getetag"),
                ("", "q")
            ]
        );
        assert!(prop.children[1].child(DAV, "z").is_some());
        // The re-declaration of A ended with its element.
        assert_eq!(root.child(DAV, "href").unwrap().text, "after");
        // xmlns declarations are not reported as attributes.
        assert!(root.attrs.is_empty());
    }

    #[test]
    fn no_namespace_bom_doctype_entities() {
        let doc = "\u{FEFF}<?xml version=\"1.0\"?><!DOCTYPE r [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> <!-- ] > --> ]>\n<r a='1 &amp; &quot;2&quot;' b=\"it's\">&lt;&gt;&amp;&quot;&apos;&#10;&#x1F600;&#65;<![CDATA[<&>]]></r>";
        let r = parse(doc).unwrap();
        assert!(r.is("", "r"));
        assert_eq!(
            r.attrs,
            [
                ("a".into(), "1 & \"2\"".into()),
                ("b".into(), "it's".into())
            ]
        );
        assert_eq!(r.text, "<>&\"'\n\u{1F600}A<&>");
        // Entities declared in a DOCTYPE are never expanded.
        let e = err("<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><r>&xxe;</r>");
        assert!(e.message.contains("unknown entity &xxe;"), "{e}");
    }

    #[test]
    fn non_ascii_in_doctype_is_skipped() {
        // Found by tests/fuzz (davxml target): a non-ASCII character outside quotes in a
        // DOCTYPE panicked with "byte index 10 is not a char boundary".
        let r = parse("<!DOCTYPE multistatus PUBLIC \"-//X//DTD Café//EN\" Grüße><r/>").unwrap();
        assert!(r.is("", "r"));
        let e = err("<!DOCTYPE\u{e9}>");
        assert!(e.message.contains("no root element"), "{e}");
        let e = err("<!DOCTYPE é");
        assert!(e.message.contains("unterminated DOCTYPE"), "{e}");
    }

    #[test]
    fn attribute_whitespace_and_prefixed_attributes() {
        let r = parse("<r xmlns:x='urn:x' x:a=\"1\n2\" b = 'c' xml:lang='en'/>").unwrap();
        assert_eq!(
            r.attrs,
            [
                ("x:a".into(), "1 2".into()),
                ("b".into(), "c".into()),
                ("xml:lang".into(), "en".into())
            ]
        );
        assert_eq!(r.attr("b"), Some("c"));
        assert!(err("<r y:a='1'/>")
            .message
            .contains("unknown namespace prefix 'y'"));
    }

    #[test]
    fn errors_have_positions() {
        let e = err("<d:a xmlns:d=\"DAV:\">\n  <d:b>\n  </d:c>\n</d:a>");
        assert_eq!((e.line, e.column), (3, 3), "{e}");
        assert!(e.message.contains("mismatched end tag"), "{e}");
        assert_eq!(e.to_string(), format!("line 3, column 3: {}", e.message));

        let e = err("<a>\n <x:b/></a>");
        assert_eq!((e.line, e.column), (2, 2));
        assert!(e.message.contains("unknown namespace prefix 'x'"));

        let e = err("<a>&nbsp;</a>");
        assert_eq!((e.line, e.column), (1, 4));
        assert!(e.message.contains("unknown entity"));

        let e = err("<a>é <!-- never closed </a>");
        assert_eq!((e.line, e.column), (1, 6));
        assert!(e.message.contains("unterminated comment"));

        assert!(err("<a><![CDATA[x</a>")
            .message
            .contains("unterminated CDATA"));
        assert!(err("<a b='x>").message.contains("unterminated attribute"));
        assert!(err("<a b='x></a>").message.contains("'<' in attribute"));
        assert!(err("<a").message.contains("unterminated tag"));
        assert!(err("<a>text").message.contains("unexpected end of input"));
        assert!(err("<a/><b/>").message.contains("after the root"));
        assert!(err("<a/>junk").message.contains("after the root"));
        assert!(err("").message.contains("empty document"));
        assert!(err("  \n <!-- only a comment -->")
            .message
            .contains("empty document"));
        assert!(err("hello").message.contains("root element"));
        assert!(err("<a>&#0;</a>")
            .message
            .contains("invalid character reference"));
        assert!(err("<a>&#xD800;</a>")
            .message
            .contains("invalid character reference"));
        assert!(err("<a>&amp</a>").message.contains("unterminated entity"));
        assert!(err("<a b='1' b='2'/>")
            .message
            .contains("duplicate attribute"));
        assert!(err("<a b='1'c='2'/>").message.contains("whitespace"));
        assert!(err("<a><!DOCTYPE a></a>")
            .message
            .contains("markup declaration"));
        assert!(err("<a:b:c xmlns:a='x'/>")
            .message
            .contains("malformed name"));
        assert!(err("<a xmlns:p='urn:p'><p:b xmlns:p=''/></a>")
            .message
            .contains("unknown namespace prefix"));
    }

    #[test]
    fn depth_is_limited() {
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(err(&deep).message.contains("nested deeper"));
        // Hostile input far beyond the limit fails fast instead of overflowing the stack.
        assert!(parse(&"<a>".repeat(1_000_000)).is_err());
    }

    #[test]
    fn mutated_inputs_never_panic() {
        let specials = [
            "<", ">", "&", "/", ":", "\"", "'", "=", ";", "#", "]", "!", "?", "\0", "é", " ",
        ];
        for doc in [NEXTCLOUD, SABRE] {
            let doc_end = doc.trim_end().len();
            let mut parsed = 0usize;
            for (i, ch) in doc.char_indices().chain([(doc.len(), ' ')]) {
                // Every truncation that cuts into the root element must be an error.
                let truncated = parse(&doc[..i]);
                assert_eq!(truncated.is_err(), i < doc_end, "truncated at {i}");
                if let Err(e) = truncated {
                    assert!(e.line >= 1 && e.column >= 1);
                }
                if i == doc.len() {
                    break;
                }
                let after = &doc[i + ch.len_utf8()..];
                let _ = parse(&format!("{}{}", &doc[..i], after));
                for c in specials {
                    let _ = parse(&format!("{}{c}{after}", &doc[..i]));
                    let _ = parse(&format!("{}{c}{}", &doc[..i], &doc[i..]));
                    parsed += 2;
                }
            }
            assert!(parsed >= 32 * doc.chars().count());
        }
    }

    fn propfind() -> Element {
        Element::new(DAV, "propfind").with_child(
            Element::new(DAV, "prop")
                .with_child(Element::new(DAV, "resourcetype"))
                .with_child(Element::new(DAV, "displayname"))
                .with_child(Element::new(CALSERVER, "getctag"))
                .with_child(Element::new(DAV, "sync-token"))
                .with_child(Element::new(ICAL, "calendar-color"))
                .with_child(Element::new(CALDAV, "supported-calendar-component-set")),
        )
    }

    fn calendar_query() -> Element {
        Element::new(CALDAV, "calendar-query")
            .with_child(Element::new(DAV, "prop").with_child(Element::new(DAV, "getetag")))
            .with_child(
                Element::new(CALDAV, "filter").with_child(
                    Element::new(CALDAV, "comp-filter")
                        .with_attr("name", "VCALENDAR")
                        .with_child(
                            Element::new(CALDAV, "comp-filter")
                                .with_attr("name", "VTODO")
                                .with_child(
                                    Element::new(CALDAV, "time-range")
                                        .with_attr("start", "20260101T000000Z")
                                        .with_attr("end", "20270101T000000Z"),
                                ),
                        ),
                ),
            )
    }

    fn multiget() -> Element {
        Element::new(CALDAV, "calendar-multiget")
            .with_child(
                Element::new(DAV, "prop")
                    .with_child(Element::new(DAV, "getetag"))
                    .with_child(Element::new(CALDAV, "calendar-data")),
            )
            .with_child(Element::new(DAV, "href").with_text("/cal/a%20b.ics"))
            .with_child(Element::new(DAV, "href").with_text("/cal/x&y<z>.ics"))
    }

    fn sync_collection() -> Element {
        Element::new(DAV, "sync-collection")
            .with_child(
                Element::new(DAV, "sync-token").with_text("http://radicale.org/ns/sync/abc"),
            )
            .with_child(Element::new(DAV, "sync-level").with_text("1"))
            .with_child(Element::new(DAV, "prop").with_child(Element::new(DAV, "getetag")))
    }

    fn mkcalendar() -> Element {
        Element::new(CALDAV, "mkcalendar").with_child(
            Element::new(DAV, "set").with_child(
                Element::new(DAV, "prop")
                    .with_child(
                        Element::new(DAV, "displayname").with_text("Plane: \"Web\" & 'API'"),
                    )
                    .with_child(Element::new(ICAL, "calendar-color").with_text("#FF8800"))
                    .with_child(
                        Element::new(CALDAV, "calendar-description")
                            .with_text("line 1\r\nline 2\ttab\n"),
                    )
                    .with_child(
                        Element::new(CALDAV, "supported-calendar-component-set")
                            .with_child(Element::new(CALDAV, "comp").with_attr("name", "VEVENT"))
                            .with_child(Element::new(CALDAV, "comp").with_attr("name", "VTODO")),
                    )
                    .with_child(Element::new("urn:x-custom", "thing").with_attr("v", "a\tb\nc\r"))
                    .with_child(Element::new("urn:x-other", "thing"))
                    .with_child(Element::new("", "plain").with_text("no ns")),
            ),
        )
    }

    #[test]
    fn round_trip_request_bodies() {
        for e in [
            propfind(),
            calendar_query(),
            multiget(),
            sync_collection(),
            mkcalendar(),
        ] {
            let xml = e.to_xml();
            assert_eq!(parse(&xml).as_ref(), Ok(&e), "{xml}");
        }
    }

    #[test]
    fn writer_prefixes_and_escaping() {
        assert_eq!(
            sync_collection().to_xml(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><d:sync-collection xmlns:d=\"DAV:\"><d:sync-token>http://radicale.org/ns/sync/abc</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
        );
        let xml = mkcalendar().to_xml();
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><c:mkcalendar xmlns:c=\"urn:ietf:params:xml:ns:caldav\" xmlns:d=\"DAV:\" xmlns:ic=\"http://apple.com/ns/ical/\" xmlns:n0=\"urn:x-custom\" xmlns:n1=\"urn:x-other\">"
        ), "{xml}");
        assert!(xml.contains(
            "<d:displayname>Plane: &quot;Web&quot; &amp; &apos;API&apos;</d:displayname>"
        ));
        assert!(xml.contains("<n0:thing v=\"a&#9;b&#10;c&#13;\"/>"));
        assert!(xml.contains("<plain>no ns</plain>"));
        assert!(propfind()
            .to_xml()
            .contains("xmlns:cs=\"http://calendarserver.org/ns/\""));
        assert_eq!(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    }

    #[test]
    fn elements_share_their_namespace_string() {
        // Copied per element, a 100 KB URI declared once made 2,500 `<a/>` cost 250 MB
        // (tests/fuzz/corpus/davxml/crash-namespace-amplification.xml).
        let uri = "u".repeat(100_000);
        let doc = format!("<r xmlns=\"{uri}\">{}</r>", "<a/>".repeat(3));
        let r = parse(&doc).unwrap();
        assert_eq!(r.children.len(), 3);
        assert!(r.children.iter().all(|c| Arc::ptr_eq(&c.ns, &r.ns)));
        assert_eq!(&*r.ns, uri);
    }

    #[test]
    fn characters_xml_forbids_are_dropped() {
        // A Plane project named with terminal escapes: Radicale refused the MKCALENDAR.
        let name = "Ops\u{1b}[31m\u{7}\u{0}\u{FFFE}\t\u{9b}é";
        assert_eq!(escape(name), "Ops[31m\t\u{9b}é");
        let body = format!("<d:x xmlns:d=\"DAV:\">{}</d:x>", escape(name));
        assert!(parse(&body).is_ok());
    }
}
