//! DAV XML reader (`davxml::parse`) on arbitrary text, as a server's multistatus body.
//!
//! Properties beyond "does not panic":
//! - memory: the peak heap in use while parsing stays within [`ALLOC_FACTOR`] × input size
//!   plus [`ALLOC_SLACK`] — a hostile server must not turn a body into far more memory
//!   (the client accepts bodies of up to 64 MB);
//! - nesting never exceeds `davxml::MAX_DEPTH`;
//! - `Element::to_xml` (used for our request bodies) reads back to the same tree, for trees
//!   whose attributes need no namespace declaration (the writer only declares element
//!   namespaces, which is all our requests use).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use calplanebot::davxml::{self, Element};
use libfuzzer_sys::fuzz_target;

/// Allowed peak heap per input byte. A minimal element `<a/>` (4 bytes) costs one 120-byte
/// `Element` in its parent's child vector, which grows by doubling (old and new buffer live
/// at once during the move): about 90 bytes per input byte in the worst structural case.
const ALLOC_FACTOR: usize = 128;

/// Fixed allowance for the parser's small vectors and the error message.
const ALLOC_SLACK: usize = 64 * 1024;

/// Counts live heap bytes and their high-water mark; single-threaded use only matters here
/// (libFuzzer runs the target on one thread), the atomics just make it sound.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Count the moment both buffers may exist, as a copying realloc does.
            grow(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

fn grow(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    // The client decodes bodies lossily (`lossy_utf8`), so any bytes can reach the reader.
    let text = String::from_utf8_lossy(data);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let parsed = davxml::parse(&text);
    let used = PEAK.load(Ordering::Relaxed) - base;
    let budget = ALLOC_FACTOR * text.len() + ALLOC_SLACK;
    assert!(
        used <= budget,
        "parsing {} bytes took {used} bytes of heap (budget {budget})",
        text.len()
    );
    let Ok(root) = parsed else {
        return;
    };
    assert!(
        depth(&root) <= davxml::MAX_DEPTH,
        "nesting beyond MAX_DEPTH"
    );
    if attrs_need_no_declaration(&root) {
        let xml = root.to_xml();
        let back = davxml::parse(&xml).unwrap_or_else(|e| panic!("to_xml output unreadable: {e}"));
        // The writer drops characters XML 1.0 forbids (the reader tolerates them in text).
        assert_eq!(
            back,
            without_non_chars(root),
            "parse → to_xml → parse changed the tree"
        );
    }
});

/// Depth of the element tree (the root counts as 1), without recursion: the tree may be
/// `MAX_DEPTH` deep and this must not be the thing that fails.
fn depth(root: &Element) -> usize {
    let mut max = 0;
    let mut todo = vec![(root, 1)];
    while let Some((e, d)) = todo.pop() {
        max = max.max(d);
        todo.extend(e.children.iter().map(|c| (c, d + 1)));
    }
    max
}

/// True when every attribute is unprefixed or uses the predeclared `xml` prefix.
fn attrs_need_no_declaration(root: &Element) -> bool {
    let mut todo = vec![root];
    while let Some(e) = todo.pop() {
        if e.attrs
            .iter()
            .any(|(k, _)| k.contains(':') && !k.starts_with("xml:"))
        {
            return false;
        }
        todo.extend(e.children.iter());
    }
    true
}

/// XML 1.0 `Char` (§2.2).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The tree as the writer can express it: text, attribute values and namespaces without
/// non-`Char`s.
fn without_non_chars(mut root: Element) -> Element {
    let mut todo = vec![&mut root];
    while let Some(e) = todo.pop() {
        e.text.retain(is_xml_char);
        if !e.ns.chars().all(is_xml_char) {
            e.ns = e.ns.chars().filter(|&c| is_xml_char(c)).collect::<String>().into();
        }
        for (_, v) in e.attrs.iter_mut() {
            v.retain(is_xml_char);
        }
        todo.extend(e.children.iter_mut());
    }
    root
}
