//! Pure helpers for hrefs, URLs and ETags: no I/O, no errors of their own.
//!
//! Servers answer with full URLs (`http://host/cal/x.ics`) or paths, and percent-encode
//! differently (`a%40b.ics` from Radicale, `a@b.ics` from Xandikos for the same name), so
//! hrefs are kept as the server wrote them and compared with [`same_href`].

/// Splits `scheme://host[:port]/path` into the origin (no trailing slash) and the path
/// (`/` when empty). `None` when `url` has no `scheme://`.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let scheme_end = url.find("://")?;
    let after = &url[scheme_end + 3..];
    let path_start = after.find('/').unwrap_or(after.len());
    let origin = &url[..scheme_end + 3 + path_start];
    let path = match &after[path_start..] {
        "" => "/",
        p => p,
    };
    Some((origin.to_string(), path.to_string()))
}

/// The path part of an href that may be a full URL.
pub fn path_of(href: &str) -> String {
    path_slice(href).to_string()
}

/// [`path_of`] without the copy.
fn path_slice(href: &str) -> &str {
    match href.find("://") {
        Some(i) => {
            let after = &href[i + 3..];
            after.find('/').map_or("/", |p| &after[p..])
        }
        None => href,
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are); bytes that do not form
/// UTF-8 after decoding become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    match String::from_utf8(decoded(s)) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The bytes `s` stands for with its `%XX` escapes decoded; the text between escapes is
/// copied a run at a time.
fn decoded(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..i]);
        let escape = rest
            .get(i + 1..i + 3)
            .and_then(|h| Some(hex_value(h[0])? << 4 | hex_value(h[1])?));
        match escape {
            Some(byte) => {
                out.push(byte);
                rest = &rest[i + 3..];
            }
            None => {
                out.push(b'%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes a path segment: everything but RFC 3986 unreserved characters. `@` becomes
/// `%40`, as Python's `caldav` (used by the seed) writes it.
pub fn percent_encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether two hrefs name the same resource despite different encodings or URL forms.
pub fn same_href(a: &str, b: &str) -> bool {
    let (a, b) = (path_slice(a), path_slice(b));
    a == b || ((a.contains('%') || b.contains('%')) && decoded(a) == decoded(b))
}

/// Whether two hrefs name the same collection, also when one lacks the trailing slash.
pub fn same_collection(a: &str, b: &str) -> bool {
    same_href(&with_slash(path_of(a)), &with_slash(path_of(b)))
}

/// ETags are quoted strings; some servers list them bare. Normalise to quoted; `None`
/// for an empty one.
pub fn normalize_etag(e: &str) -> Option<String> {
    let e = e.trim();
    if e.is_empty() {
        None
    } else if e.starts_with('"') || e.starts_with("W/\"") {
        Some(e.to_string())
    } else {
        Some(format!("\"{e}\""))
    }
}

/// The collection holding `path` (`/cal/work/` → `/cal/`), ending in `/`.
pub fn parent_of(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => trimmed[..=i].to_string(),
        None => "/".to_string(),
    }
}

/// `path` with a trailing `/`, as collection hrefs are written.
pub fn with_slash(path: String) -> String {
    if path.ends_with('/') {
        path
    } else {
        path + "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_compare_across_encodings() {
        assert!(same_href(
            "/cal/plane-issue-1%40calplanebot.ics",
            "http://h:1/cal/plane-issue-1@calplanebot.ics"
        ));
        assert!(!same_href("/cal/a.ics", "/cal/b.ics"));
        assert_eq!(
            percent_encode_segment("plane-issue-x@calplanebot"),
            "plane-issue-x%40calplanebot"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%e2%9c%94"), "✔");
        assert_eq!(percent_decode("%E2%9C%94%2F%zz%+4%"), "✔/%zz%+4%");
        assert_eq!(percent_decode("bad %ff byte"), "bad \u{FFFD} byte");
        assert_eq!(percent_decode("plain"), "plain");
        assert!(same_href("/c/%7e%41", "/c/~A"));
        assert!(!same_href("/c/%41", "/c/%2541"));
    }

    #[test]
    fn collections_compare_with_or_without_slash() {
        assert!(same_collection("/cal/work", "http://h/cal/work/"));
        assert!(same_collection("/cal/w%20k/", "/cal/w k"));
        assert!(!same_collection("/cal/work/", "/cal/"));
    }

    #[test]
    fn url_parts() {
        assert_eq!(
            split_url("https://h:8443/remote.php/dav"),
            Some(("https://h:8443".to_string(), "/remote.php/dav".to_string()))
        );
        assert_eq!(split_url("http://h").map(|p| p.1).as_deref(), Some("/"));
        assert_eq!(split_url("h/x"), None);
        assert_eq!(path_of("http://h:1"), "/");
        assert_eq!(path_of("/a/b"), "/a/b");
        assert_eq!(parent_of("/cal/work/"), "/cal/");
        assert_eq!(parent_of("/cal"), "/");
        assert_eq!(with_slash("/cal".into()), "/cal/");
        assert_eq!(with_slash("/cal/".into()), "/cal/");
    }

    #[test]
    fn etags_are_quoted() {
        assert_eq!(normalize_etag("abc").as_deref(), Some("\"abc\""));
        assert_eq!(normalize_etag("\"abc\"").as_deref(), Some("\"abc\""));
        assert_eq!(normalize_etag(" W/\"abc\" ").as_deref(), Some("W/\"abc\""));
        assert_eq!(normalize_etag("  "), None);
    }
}
