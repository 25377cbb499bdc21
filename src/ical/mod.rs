//! iCalendar (RFC 5545) codec: a lossless tree of components and content lines.
//!
//! The model is deliberately untyped: a [`Component`] holds [`Property`]s whose `value` is the
//! raw, still-escaped text from the wire. That way an object fetched from a CalDAV server can
//! be parsed, have only the properties we own changed, and be written back with every other
//! property (X- props of other clients, VALARMs a user added, VTIMEZONEs) intact.
//!
//! Typed access is opt-in: [`Property::text_value`] unescapes TEXT, [`Date`] handles the
//! `VALUE=DATE` values of all-day events and tasks, [`Property::when`] tells such a date
//! from a DATE-TIME.

mod date;
mod parse;
mod write;

pub use date::{Date, TimeZone, When};
pub use parse::{parse, parse_bytes, unescape_text};
pub use write::{escape_text, write};

use std::fmt;

/// A component such as VCALENDAR, VEVENT, VTODO or VALARM.
///
/// The order of properties and of sub-components is preserved so that a parse/write round
/// trip changes as little as possible (servers and other clients compare ETags, humans diff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Component name, upper-cased by the parser (`VEVENT`).
    pub name: String,
    /// Properties in wire order.
    pub properties: Vec<Property>,
    /// Sub-components in wire order.
    pub components: Vec<Component>,
}

/// One content line (`NAME;PARAM=VALUE:value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Property name, upper-cased by the parser and by the constructors.
    pub name: String,
    /// Parameters in wire order.
    pub params: Vec<Param>,
    /// The raw value as on the wire (TEXT still escaped), so unknown properties round-trip
    /// byte-exactly. It must not contain line breaks; [`write()`] escapes any it finds as `\n`
    /// rather than let them split the line (which would inject properties).
    pub value: String,
}

/// A property parameter (`ROLE=REQ-PARTICIPANT`, `MEMBER="a","b"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name, upper-cased by the parser and by [`Property::with_param`].
    pub name: String,
    /// Values without surrounding quotes, RFC 6868 `^`-escapes decoded.
    pub values: Vec<String>,
}

/// Why input could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based physical line number (the line a folded content line starts on).
    pub line: usize,
    /// Short description without the line number.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Property {
    /// A property with a raw (already escaped or non-TEXT) value, e.g. `DTSTART`, `SEQUENCE`.
    pub fn new(name: &str, value: &str) -> Property {
        Property {
            name: name.to_ascii_uppercase(),
            params: Vec::new(),
            value: value.to_string(),
        }
    }

    /// A TEXT property; `text` is escaped, so commas, semicolons and newlines are safe.
    pub fn text(name: &str, text: &str) -> Property {
        Property::new(name, &escape_text(text))
    }

    /// A multi-valued TEXT property such as `CATEGORIES`: each item escaped, joined by `,`.
    pub fn text_list(name: &str, items: &[&str]) -> Property {
        let escaped: Vec<String> = items.iter().map(|s| escape_text(s)).collect();
        Property::new(name, &escaped.join(","))
    }

    /// Sets parameter `name` to the single value `value`, replacing any existing parameter of
    /// that name (so calling it twice does not produce a duplicate parameter).
    pub fn with_param(mut self, name: &str, value: &str) -> Property {
        let param = Param {
            name: name.to_ascii_uppercase(),
            values: vec![value.to_string()],
        };
        match self
            .params
            .iter()
            .position(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.params[i] = param;
                let mut j = i + 1;
                while j < self.params.len() {
                    if self.params[j].name.eq_ignore_ascii_case(name) {
                        self.params.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.params.push(param),
        }
        self
    }

    /// First value of parameter `name` (case-insensitive), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(|p| p.values.first())
            .map(String::as_str)
    }

    /// The value unescaped as RFC 5545 TEXT.
    pub fn text_value(&self) -> String {
        unescape_text(&self.value)
    }

    /// The value of a DTSTART/DTEND/DUE (or any DATE / DATE-TIME property) with its form:
    /// all-day, or a time in UTC, in a TZID, or floating. `None` when it is neither.
    pub fn when(&self) -> Option<When> {
        When::parse(&self.value, self.param("TZID"))
    }

    /// The value split at unescaped commas, each item unescaped (`CATEGORIES:a\,b,c` gives
    /// `["a,b", "c"]`). An empty value gives an empty list.
    pub fn text_values(&self) -> Vec<String> {
        if self.value.is_empty() {
            return Vec::new();
        }
        let mut items = Vec::new();
        let mut start = 0;
        let mut escaped = false;
        for (i, c) in self.value.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                ',' => {
                    items.push(unescape_text(&self.value[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        items.push(unescape_text(&self.value[start..]));
        items
    }
}

impl Component {
    /// An empty component; `name` is upper-cased.
    pub fn new(name: &str) -> Component {
        Component {
            name: name.to_ascii_uppercase(),
            properties: Vec::new(),
            components: Vec::new(),
        }
    }

    /// The first property called `name` (case-insensitive).
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// All properties called `name` (case-insensitive), in order.
    pub fn properties_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> {
        self.properties
            .iter()
            .filter(move |p| p.name.eq_ignore_ascii_case(name))
    }

    /// Unescaped TEXT value of the first property called `name`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.property(name).map(Property::text_value)
    }

    /// Replaces all properties named like `p` by `p`, at the position of the first of them, so
    /// rewriting an object does not reorder it; appends `p` if there was none.
    pub fn set(&mut self, p: Property) {
        match self
            .properties
            .iter()
            .position(|q| q.name.eq_ignore_ascii_case(&p.name))
        {
            Some(first) => {
                let name = p.name.clone();
                let mut i = 0;
                self.properties.retain(|q| {
                    let keep = i <= first || !q.name.eq_ignore_ascii_case(&name);
                    i += 1;
                    keep
                });
                self.properties[first] = p;
            }
            None => self.properties.push(p),
        }
    }

    /// Removes every property called `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.properties
            .retain(|p| !p.name.eq_ignore_ascii_case(name));
    }

    /// Appends `p` after the existing properties (for multi-valued ones like ATTENDEE).
    pub fn push(&mut self, p: Property) {
        self.properties.push(p);
    }

    /// The first sub-component called `name` (case-insensitive).
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Mutable access to the first sub-component called `name` (case-insensitive).
    pub fn component_mut(&mut self, name: &str) -> Option<&mut Component> {
        self.components
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// All sub-components called `name` (case-insensitive), e.g. every VEVENT of a recurring
    /// event with overridden instances.
    pub fn components_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Component> {
        self.components
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_constructors_and_params() {
        let p = Property::text("summary", "a, b; c\nd").with_param("language", "de");
        assert_eq!(p.name, "SUMMARY");
        assert_eq!(p.value, "a\\, b\\; c\\nd");
        assert_eq!(p.text_value(), "a, b; c\nd");
        assert_eq!(p.param("LANGUAGE"), Some("de"));
        assert_eq!(p.param("Language"), Some("de"));
        assert_eq!(p.param("x"), None);
        // with_param replaces rather than duplicates.
        let p = p.with_param("LANGUAGE", "en");
        assert_eq!(p.params.len(), 1);
        assert_eq!(p.param("language"), Some("en"));
        // Raw constructor does not escape.
        assert_eq!(Property::new("x-foo", "a,b").value, "a,b");
    }

    #[test]
    fn text_lists() {
        let p = Property::text_list("CATEGORIES", &["a,b", "c;d", "e"]);
        assert_eq!(p.value, "a\\,b,c\\;d,e");
        assert_eq!(p.text_values(), vec!["a,b", "c;d", "e"]);
        assert_eq!(
            Property::new("CATEGORIES", "").text_values(),
            Vec::<String>::new()
        );
        assert_eq!(
            Property::new("CATEGORIES", "x\\\\,y").text_values(),
            vec!["x\\", "y"]
        );
    }

    #[test]
    fn set_keeps_position_and_removes_duplicates() {
        let mut c = Component::new("vevent");
        assert_eq!(c.name, "VEVENT");
        c.push(Property::new("UID", "1"));
        c.push(Property::new("CATEGORIES", "a"));
        c.push(Property::new("SUMMARY", "s"));
        c.push(Property::new("categories", "b"));
        c.set(Property::new("CATEGORIES", "c"));
        let names: Vec<&str> = c.properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["UID", "CATEGORIES", "SUMMARY"]);
        assert_eq!(c.property("categories").unwrap().value, "c");
        c.set(Property::new("SEQUENCE", "1"));
        assert_eq!(c.properties.last().unwrap().name, "SEQUENCE");
        c.remove("uid");
        assert!(c.property("UID").is_none());
        assert_eq!(c.properties.len(), 3);
    }

    #[test]
    fn lookups() {
        let mut cal = Component::new("VCALENDAR");
        let mut ev = Component::new("VEVENT");
        ev.push(Property::new("ATTENDEE", "mailto:a@x"));
        ev.push(Property::text("SUMMARY", "Hi, there"));
        ev.push(Property::new("ATTENDEE", "mailto:b@x"));
        cal.components.push(Component::new("VTIMEZONE"));
        cal.components.push(ev);
        cal.components.push(Component::new("VEVENT"));
        let ev = cal.component("vevent").unwrap();
        assert_eq!(ev.text("summary").as_deref(), Some("Hi, there"));
        let att: Vec<&str> = ev
            .properties_named("attendee")
            .map(|p| p.value.as_str())
            .collect();
        assert_eq!(att, ["mailto:a@x", "mailto:b@x"]);
        assert_eq!(cal.components_named("VEVENT").count(), 2);
        cal.component_mut("VEVENT")
            .unwrap()
            .set(Property::new("SUMMARY", "x"));
        assert_eq!(
            cal.component("VEVENT").unwrap().text("SUMMARY").as_deref(),
            Some("x")
        );
        assert!(cal.component("VTODO").is_none());
    }

    #[test]
    fn parse_error_display() {
        let e = ParseError {
            line: 7,
            message: "property without ':'".into(),
        };
        assert_eq!(e.to_string(), "line 7: property without ':'");
    }
}
