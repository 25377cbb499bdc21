//! Work items read straight from Plane's JSON text into [`WorkItem`]s, without building a
//! generic `miniserde::json::Value` tree first: a page of 100 items is ~150 KB of JSON, and
//! the tree (a map and a string per field, of some 40 fields per item, most of which we do
//! not use) cost more to build and drop than everything else done with the page.
//!
//! The reading is as lenient as the field readers in [`super::model`] are for other
//! objects: a field of an unexpected type counts as absent, unknown fields are skipped
//! (Plane adds fields between releases), an id may come bare or as an expanded object.
//! One unreadable item becomes an error of its own; text that is not JSON fails the page.

use miniserde::de::{Map, Seq, Visitor};
use miniserde::{Deserialize, Result};

use super::model::{FieldError, Label, Member, State, WorkItem};

/// Why a work item or a page of them could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The text is not JSON at all.
    NotJson,
    /// JSON, but not the shape we read (the message says what is missing).
    Shape(FieldError),
}

/// One page of a work item listing.
#[derive(Debug, Clone, Default)]
pub struct ItemPage {
    /// The page's items in order; an unreadable one is an error in its place.
    pub items: Vec<std::result::Result<WorkItem, FieldError>>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

/// Reads a page of work items: Plane's envelope (`results`, `next_cursor`,
/// `next_page_results`) or a bare array (a single page).
pub fn item_page(json: &str) -> std::result::Result<ItemPage, ReadError> {
    let page = parse::<PageReader>(json)?;
    let (results, more, cursor) = match page {
        PageReader::Array(items) => (items.0, false, None),
        PageReader::Envelope(e) => (e.results.0, e.more.0, e.next_cursor.0),
        PageReader::Neither => {
            return Err(shape("page is neither an object nor an array"));
        }
    };
    let Some(slots) = results else {
        return Err(shape("page has no \"results\" array"));
    };
    Ok(ItemPage {
        items: slots.into_iter().map(ItemSlot::into_result).collect(),
        next_cursor: cursor.filter(|c| more && !c.is_empty()),
    })
}

/// Reads one work item (a GET of one item, or the answer to a PATCH or POST).
pub fn work_item(json: &str) -> std::result::Result<WorkItem, ReadError> {
    parse::<ItemSlot>(json)?
        .into_result()
        .map_err(ReadError::Shape)
}

fn shape(message: &str) -> ReadError {
    ReadError::Shape(FieldError(message.to_string()))
}

/// Parses `json` with the reader `T`, which accepts any JSON value.
fn parse<T: Default + Visitor>(json: &str) -> std::result::Result<T, ReadError> {
    match miniserde::json::from_str::<Top<T>>(json) {
        Ok(top) => Ok(top.0),
        Err(_) => Err(ReadError::NotJson),
    }
}

/// The root of a document read with `T` (miniserde starts from a [`Deserialize`] type).
struct Top<T>(T);

impl<T: Default + Visitor> Deserialize for Top<T> {
    fn begin(out: &mut Option<Self>) -> &mut dyn Visitor {
        &mut out.insert(Top(T::default())).0
    }
}

/// Skips an array or object we do not read.
struct Skip;

impl Seq for Skip {
    fn element(&mut self) -> Result<&mut dyn Visitor> {
        Ok(<dyn Visitor>::ignore())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Map for Skip {
    fn key(&mut self, _: &str) -> Result<&mut dyn Visitor> {
        Ok(<dyn Visitor>::ignore())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Implements the scalar callbacks of a [`Visitor`] as "a value of another type": `$reset`
/// is what the reader becomes (the last occurrence of a key wins, as in a JSON object).
macro_rules! other_values {
    ($reset:expr) => {
        fn null(&mut self) -> Result<()> {
            *self = $reset;
            Ok(())
        }
        fn boolean(&mut self, _: bool) -> Result<()> {
            *self = $reset;
            Ok(())
        }
        fn negative(&mut self, _: i64) -> Result<()> {
            *self = $reset;
            Ok(())
        }
        fn nonnegative(&mut self, _: u64) -> Result<()> {
            *self = $reset;
            Ok(())
        }
        fn float(&mut self, _: f64) -> Result<()> {
            *self = $reset;
            Ok(())
        }
    };
}

/// Arrays and objects as "a value of another type" (see [`other_values`]).
macro_rules! other_containers {
    ($reset:expr) => {
        fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
            *self = $reset;
            Ok(Box::new(Skip))
        }
        fn map(&mut self) -> Result<Box<dyn Map + '_>> {
            *self = $reset;
            Ok(Box::new(Skip))
        }
    };
}

/// A string field: `Some` for any string (also an empty one), `None` for other values.
#[derive(Debug, Default)]
struct Str(Option<String>);

impl Str {
    /// The value when it is a non-empty string (what Plane means by "set").
    fn set(self) -> Option<String> {
        self.0.filter(|s| !s.is_empty())
    }
}

impl Visitor for Str {
    fn string(&mut self, s: &str) -> Result<()> {
        self.0 = Some(s.to_string());
        Ok(())
    }
    other_values!(Str(None));
    other_containers!(Str(None));
}

/// A count: a non-negative integer (or float, truncated); `None` for other values.
#[derive(Debug, Default)]
struct Count(Option<u64>);

impl Visitor for Count {
    fn nonnegative(&mut self, n: u64) -> Result<()> {
        self.0 = Some(n);
        Ok(())
    }
    fn float(&mut self, f: f64) -> Result<()> {
        self.0 = (f >= 0.0).then_some(f as u64);
        Ok(())
    }
    fn null(&mut self) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    fn boolean(&mut self, _: bool) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    fn negative(&mut self, _: i64) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    fn string(&mut self, _: &str) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    other_containers!(Count(None));
}

/// `true` only for JSON `true`.
#[derive(Debug, Default)]
struct Flag(bool);

impl Visitor for Flag {
    fn boolean(&mut self, b: bool) -> Result<()> {
        self.0 = b;
        Ok(())
    }
    fn string(&mut self, _: &str) -> Result<()> {
        self.0 = false;
        Ok(())
    }
    fn null(&mut self) -> Result<()> {
        self.0 = false;
        Ok(())
    }
    fn negative(&mut self, _: i64) -> Result<()> {
        self.0 = false;
        Ok(())
    }
    fn nonnegative(&mut self, _: u64) -> Result<()> {
        self.0 = false;
        Ok(())
    }
    fn float(&mut self, _: f64) -> Result<()> {
        self.0 = false;
        Ok(())
    }
    other_containers!(Flag(false));
}

/// An object's fields as named readers: `field` returns the reader for a key we read.
trait Fields: Default {
    /// The reader of `key`'s value, `None` for keys we skip.
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor>;
}

/// Reads an object's fields into `F`, then hands them to `done`.
struct Object<'a, F, D: FnMut(F)> {
    fields: F,
    done: Option<D>,
    _out: std::marker::PhantomData<&'a mut ()>,
}

impl<'a, F: Fields, D: FnMut(F) + 'a> Object<'a, F, D> {
    fn boxed(done: D) -> Box<dyn Map + 'a>
    where
        F: 'a,
    {
        Box::new(Object {
            fields: F::default(),
            done: Some(done),
            _out: std::marker::PhantomData,
        })
    }
}

impl<F: Fields, D: FnMut(F)> Map for Object<'_, F, D> {
    fn key(&mut self, k: &str) -> Result<&mut dyn Visitor> {
        Ok(match self.fields.field(k) {
            Some(v) => v,
            None => <dyn Visitor>::ignore(),
        })
    }
    fn finish(&mut self) -> Result<()> {
        if let Some(mut done) = self.done.take() {
            done(std::mem::take(&mut self.fields));
        }
        Ok(())
    }
}

/// An array of `T`s; any other value reads as no array.
#[derive(Debug)]
struct List<T>(Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

/// Collects the elements of an array into its [`List`].
struct Elements<'a, T> {
    out: &'a mut Option<Vec<T>>,
}

impl<T: Default + Visitor> Seq for Elements<'_, T> {
    fn element(&mut self) -> Result<&mut dyn Visitor> {
        let list = self.out.get_or_insert_with(Vec::new);
        list.push(T::default());
        let last = list.len() - 1;
        Ok(&mut list[last])
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl<T: Default + Visitor> Visitor for List<T> {
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        self.0 = Some(Vec::new());
        Ok(Box::new(Elements { out: &mut self.0 }))
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        self.0 = None;
        Ok(Box::new(Skip))
    }
    fn string(&mut self, _: &str) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    other_values!(List(None));
}

impl<T> List<T> {
    /// The elements; an absent or non-array value gives none.
    fn elements(self) -> Vec<T> {
        self.0.unwrap_or_default()
    }
}

/// An id given bare (`"…"`) or as an expanded object (`{"id": "…", …}`).
#[derive(Debug, Default)]
enum IdRef {
    /// Absent, or a value of another type.
    #[default]
    None,
    /// A bare id (taken as it is, also when empty).
    Bare(String),
    /// An object's non-empty `id`, if it had one.
    Expanded(Option<String>),
}

impl IdRef {
    fn id(self) -> Option<String> {
        match self {
            IdRef::None => None,
            IdRef::Bare(id) => Some(id),
            IdRef::Expanded(id) => id,
        }
    }
}

/// The one field of an expanded object we need for a reference.
#[derive(Default)]
struct IdField {
    id: Str,
}

impl Fields for IdField {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        (key == "id").then_some(&mut self.id as &mut dyn Visitor)
    }
}

impl Visitor for IdRef {
    fn string(&mut self, s: &str) -> Result<()> {
        *self = IdRef::Bare(s.to_string());
        Ok(())
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|f: IdField| {
            *self = IdRef::Expanded(f.id.set())
        }))
    }
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        *self = IdRef::None;
        Ok(Box::new(Skip))
    }
    other_values!(IdRef::None);
}

/// A state: bare id or expanded object; `null` and absence mean none.
#[derive(Debug, Default)]
enum StateRef {
    #[default]
    None,
    Bare(String),
    Expanded(StateFields),
    /// A number, boolean or array.
    Wrong,
}

#[derive(Debug, Default)]
struct StateFields {
    id: Str,
    name: Str,
    group: Str,
}

impl Fields for StateFields {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        match key {
            "id" => Some(&mut self.id),
            "name" => Some(&mut self.name),
            "group" => Some(&mut self.group),
            _ => None,
        }
    }
}

impl Visitor for StateRef {
    fn string(&mut self, s: &str) -> Result<()> {
        *self = StateRef::Bare(s.to_string());
        Ok(())
    }
    fn null(&mut self) -> Result<()> {
        *self = StateRef::None;
        Ok(())
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|f: StateFields| {
            *self = StateRef::Expanded(f)
        }))
    }
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        *self = StateRef::Wrong;
        Ok(Box::new(Skip))
    }
    fn boolean(&mut self, _: bool) -> Result<()> {
        *self = StateRef::Wrong;
        Ok(())
    }
    fn negative(&mut self, _: i64) -> Result<()> {
        *self = StateRef::Wrong;
        Ok(())
    }
    fn nonnegative(&mut self, _: u64) -> Result<()> {
        *self = StateRef::Wrong;
        Ok(())
    }
    fn float(&mut self, _: f64) -> Result<()> {
        *self = StateRef::Wrong;
        Ok(())
    }
}

impl StateRef {
    fn into_state(self) -> std::result::Result<State, FieldError> {
        match self {
            StateRef::None => Ok(State::default()),
            StateRef::Bare(id) => Ok(State {
                id,
                ..State::default()
            }),
            StateRef::Expanded(f) => Ok(State {
                id: f
                    .id
                    .set()
                    .ok_or_else(|| FieldError("state has no \"id\"".into()))?,
                name: f.name.set().unwrap_or_default(),
                group: f.group.set().unwrap_or_default(),
            }),
            StateRef::Wrong => Err(FieldError("state is not a JSON object".into())),
        }
    }
}

/// A label: bare id or expanded object.
#[derive(Debug, Default)]
enum LabelRef {
    /// A value of another type (no id).
    #[default]
    Wrong,
    Bare(String),
    Expanded(LabelFields),
}

#[derive(Debug, Default)]
struct LabelFields {
    id: Str,
    name: Str,
}

impl Fields for LabelFields {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        match key {
            "id" => Some(&mut self.id),
            "name" => Some(&mut self.name),
            _ => None,
        }
    }
}

impl Visitor for LabelRef {
    fn string(&mut self, s: &str) -> Result<()> {
        *self = LabelRef::Bare(s.to_string());
        Ok(())
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|f: LabelFields| {
            *self = LabelRef::Expanded(f)
        }))
    }
    other_values!(LabelRef::Wrong);
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        *self = LabelRef::Wrong;
        Ok(Box::new(Skip))
    }
}

impl LabelRef {
    fn into_label(self) -> std::result::Result<Label, FieldError> {
        let (id, name) = match self {
            LabelRef::Bare(id) => (Some(id), String::new()),
            LabelRef::Expanded(f) => (f.id.set(), f.name.set().unwrap_or_default()),
            LabelRef::Wrong => (None, String::new()),
        };
        let id = id.ok_or_else(|| FieldError("label without id".into()))?;
        Ok(Label { id, name })
    }
}

/// A user: bare id or expanded object (workspace member lists wrap it in `member`).
#[derive(Debug, Default)]
enum UserRef {
    /// A value of another type (no id).
    #[default]
    Wrong,
    Bare(String),
    Expanded(Box<UserFields>),
}

#[derive(Debug, Default)]
struct UserFields {
    id: Str,
    display_name: Str,
    first_name: Str,
    last_name: Str,
    email: Str,
    /// `member`, when it is an object: then it is the user.
    member: UserRef,
}

impl Fields for UserFields {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        match key {
            "id" => Some(&mut self.id),
            "display_name" => Some(&mut self.display_name),
            "first_name" => Some(&mut self.first_name),
            "last_name" => Some(&mut self.last_name),
            "email" => Some(&mut self.email),
            "member" => Some(&mut self.member),
            _ => None,
        }
    }
}

impl Visitor for UserRef {
    fn string(&mut self, s: &str) -> Result<()> {
        *self = UserRef::Bare(s.to_string());
        Ok(())
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|f: UserFields| {
            *self = UserRef::Expanded(Box::new(f))
        }))
    }
    other_values!(UserRef::Wrong);
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        *self = UserRef::Wrong;
        Ok(Box::new(Skip))
    }
}

impl UserRef {
    fn into_member(self) -> std::result::Result<Member, FieldError> {
        let user = match self {
            UserRef::Bare(id) => {
                return Ok(Member {
                    id,
                    ..Member::default()
                })
            }
            UserRef::Wrong => return Err(FieldError("user without id".into())),
            UserRef::Expanded(f) => match f.member {
                // The wrapped user; its own `member` (if any) is not looked into.
                UserRef::Expanded(inner) => inner,
                _ => f,
            },
        };
        let UserFields {
            id,
            display_name,
            first_name,
            last_name,
            email,
            member: _,
        } = *user;
        let id = id
            .set()
            .ok_or_else(|| FieldError("user without id".into()))?;
        let display_name = display_name.set().unwrap_or_else(|| {
            let (first, last) = (first_name.set(), last_name.set());
            let full = format!("{} {}", first.unwrap_or_default(), last.unwrap_or_default());
            full.trim().to_string()
        });
        Ok(Member {
            id,
            display_name,
            email: email.set().unwrap_or_default(),
        })
    }
}

/// The fields of a work item we use.
#[derive(Debug, Default)]
struct ItemFields {
    id: Str,
    project: IdRef,
    sequence_id: Count,
    name: Str,
    state: StateRef,
    priority: Str,
    start_date: Str,
    target_date: Str,
    assignees: List<UserRef>,
    labels: List<LabelRef>,
    description_html: Str,
    updated_at: Str,
    completed_at: Str,
    archived_at: Str,
    is_draft: Flag,
    external_id: Str,
    external_source: Str,
}

impl Fields for ItemFields {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        Some(match key {
            "id" => &mut self.id,
            "project" => &mut self.project,
            "sequence_id" => &mut self.sequence_id,
            "name" => &mut self.name,
            "state" => &mut self.state,
            "priority" => &mut self.priority,
            "start_date" => &mut self.start_date,
            "target_date" => &mut self.target_date,
            "assignees" => &mut self.assignees,
            "labels" => &mut self.labels,
            "description_html" => &mut self.description_html,
            "updated_at" => &mut self.updated_at,
            "completed_at" => &mut self.completed_at,
            "archived_at" => &mut self.archived_at,
            "is_draft" => &mut self.is_draft,
            "external_id" => &mut self.external_id,
            "external_source" => &mut self.external_source,
            _ => return None,
        })
    }
}

impl ItemFields {
    /// The work item, or what is wrong with it (checked in the order the fields matter).
    fn into_item(self) -> std::result::Result<WorkItem, FieldError> {
        let id = self
            .id
            .set()
            .ok_or_else(|| FieldError("work item has no \"id\"".into()))?;
        let ctx = |e: FieldError| FieldError(format!("work item {id}: {}", e.0));
        let project = self
            .project
            .id()
            .ok_or_else(|| ctx(FieldError("no project".into())))?;
        let state = self.state.into_state().map_err(ctx)?;
        let assignees = exact(self.assignees.elements(), UserRef::into_member).map_err(ctx)?;
        let labels = exact(self.labels.elements(), LabelRef::into_label).map_err(ctx)?;
        Ok(WorkItem {
            project,
            sequence_id: self.sequence_id.0.unwrap_or(0),
            name: self.name.set().unwrap_or_default(),
            state,
            priority: self.priority.set().unwrap_or_else(|| "none".into()),
            start_date: self.start_date.set().map(date_part),
            target_date: self.target_date.set().map(date_part),
            assignees,
            labels,
            description_html: self.description_html.set().unwrap_or_default(),
            updated_at: self.updated_at.set().unwrap_or_default(),
            completed_at: self.completed_at.set(),
            archived_at: self.archived_at.set(),
            is_draft: self.is_draft.0,
            external_id: self.external_id.set(),
            external_source: self.external_source.set(),
            id,
        })
    }
}

/// Converts every element, or fails at the first that cannot be; no spare capacity (a
/// listing keeps two of these per work item).
fn exact<T, U>(
    v: Vec<T>,
    f: impl Fn(T) -> std::result::Result<U, FieldError>,
) -> std::result::Result<Vec<U>, FieldError> {
    let mut out = Vec::with_capacity(v.len());
    for t in v {
        out.push(f(t)?);
    }
    Ok(out)
}

/// Plane dates are `YYYY-MM-DD`; some versions send a full timestamp. Keep the date.
fn date_part(mut s: String) -> String {
    if s.is_char_boundary(10) {
        s.truncate(10);
    }
    s
}

/// One element of a page's results: a work item or what is wrong with it.
#[derive(Debug, Default)]
struct ItemSlot(Option<std::result::Result<WorkItem, FieldError>>);

impl ItemSlot {
    fn into_result(self) -> std::result::Result<WorkItem, FieldError> {
        self.0
            .unwrap_or_else(|| Err(FieldError("work item is not a JSON object".into())))
    }
}

impl Visitor for ItemSlot {
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|f: ItemFields| self.0 = Some(f.into_item())))
    }
    fn string(&mut self, _: &str) -> Result<()> {
        self.0 = None;
        Ok(())
    }
    other_values!(ItemSlot(None));
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        self.0 = None;
        Ok(Box::new(Skip))
    }
}

/// A page as a whole.
#[derive(Debug, Default)]
enum PageReader {
    /// Neither an array nor an object.
    #[default]
    Neither,
    Array(List<ItemSlot>),
    Envelope(Envelope),
}

/// Plane's pagination envelope.
#[derive(Debug, Default)]
struct Envelope {
    results: List<ItemSlot>,
    next_cursor: Str,
    more: Flag,
}

impl Fields for Envelope {
    fn field(&mut self, key: &str) -> Option<&mut dyn Visitor> {
        match key {
            "results" => Some(&mut self.results),
            "next_cursor" => Some(&mut self.next_cursor),
            "next_page_results" => Some(&mut self.more),
            _ => None,
        }
    }
}

impl Visitor for PageReader {
    fn seq(&mut self) -> Result<Box<dyn Seq + '_>> {
        *self = PageReader::Array(List::default());
        match self {
            PageReader::Array(list) => list.seq(),
            // Just set above.
            _ => Err(miniserde::Error),
        }
    }
    fn map(&mut self) -> Result<Box<dyn Map + '_>> {
        Ok(Object::boxed(|e: Envelope| *self = PageReader::Envelope(e)))
    }
    fn string(&mut self, _: &str) -> Result<()> {
        *self = PageReader::Neither;
        Ok(())
    }
    other_values!(PageReader::Neither);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::Timestamp;

    fn item(json: &str) -> std::result::Result<WorkItem, ReadError> {
        work_item(json)
    }

    fn shape_error(json: &str) -> String {
        match item(json) {
            Err(ReadError::Shape(e)) => e.0,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn expanded_and_plain_work_items() {
        let w = item(
            r##"{"id":"i1","project":"p1","sequence_id":7,"name":"Ship it","priority":"high",
            "state":{"id":"s1","name":"In Progress","group":"started","color":"#fff"},
            "labels":[{"id":"l1","name":"bug"}],"assignees":[{"id":"u1","display_name":"ann","email":"a@x"}],
            "start_date":null,"target_date":"2026-11-24","updated_at":"2026-11-23T10:00:00Z",
            "description_html":"<p>Hi &amp; bye</p>","is_draft":false,
            "external_id":"uid-1@cal","external_source":"calplanebot"}"##,
        )
        .unwrap();
        assert_eq!(w.sequence_id, 7);
        assert_eq!(w.state.group, "started");
        assert_eq!(w.labels[0].name, "bug");
        assert_eq!(w.assignees[0].display_name, "ann");
        assert_eq!(w.target_date.as_deref(), Some("2026-11-24"));
        assert_eq!(w.start_date, None);
        assert_eq!(w.external_id.as_deref(), Some("uid-1@cal"));
        assert_eq!(w.external_source.as_deref(), Some("calplanebot"));
        assert_eq!(w.updated(), Timestamp::parse("2026-11-23T10:00:00Z"));
        assert_eq!(w.description_html, "<p>Hi &amp; bye</p>");

        let w =
            item(r#"{"id":"i2","project":"p1","state":"s2","labels":["l9"],"assignees":["u7"]}"#)
                .unwrap();
        assert_eq!(w.state.id, "s2");
        assert_eq!(w.labels[0].id, "l9");
        assert_eq!(w.assignees[0].id, "u7");
        assert_eq!((w.external_id.as_deref(), w.updated()), (None, None));
        assert_eq!(w.priority, "none", "no priority reads as none");
        assert!(item(r#"{"name":"x"}"#).is_err());
        assert!(item(r#"[1]"#).is_err());
    }

    #[test]
    fn loose_fields_count_as_absent_and_unknown_ones_are_skipped() {
        let w = item(
            r#"{"id":"i3","project":{"id":"p9","name":"Web","nested":{"a":[1,{"b":null}]}},
            "sequence_id":12.0,"name":"","priority":7,"state":null,"labels":{"id":"l1"},
            "assignees":"u1","start_date":"2026-01-02T00:00:00Z","target_date":"",
            "is_draft":true,"archived_at":"2026-01-03T00:00:00Z","completed_at":false,
            "extra":[[["deep"]],{"x":{"y":{}}}],"external_id":null,"name":"Second"}"#,
        )
        .unwrap();
        assert_eq!(w.project, "p9");
        assert_eq!(w.sequence_id, 12);
        assert_eq!(w.name, "Second", "the last of a repeated key wins");
        assert_eq!(w.priority, "none");
        assert_eq!(w.state, State::default());
        assert!(w.labels.is_empty() && w.assignees.is_empty());
        assert_eq!(w.start_date.as_deref(), Some("2026-01-02"));
        assert_eq!(w.target_date, None, "an empty date is no date");
        assert!(w.is_draft);
        assert_eq!(w.archived_at.as_deref(), Some("2026-01-03T00:00:00Z"));
        assert_eq!((w.completed_at, w.external_id), (None, None));
        assert_eq!(
            item(r#"{"id":"i","project":"p","sequence_id":-3}"#)
                .unwrap()
                .sequence_id,
            0
        );
    }

    #[test]
    fn each_unreadable_part_is_named() {
        assert_eq!(shape_error("[1]"), "work item is not a JSON object");
        assert_eq!(shape_error(r#""i1""#), "work item is not a JSON object");
        assert_eq!(
            shape_error(r#"{"id":"","project":"p"}"#),
            r#"work item has no "id""#
        );
        assert_eq!(shape_error(r#"{"id":"i1"}"#), "work item i1: no project");
        assert_eq!(
            shape_error(r#"{"id":"i1","project":{"name":"x"}}"#),
            "work item i1: no project"
        );
        assert_eq!(
            shape_error(r#"{"id":"i1","project":"p","state":{"name":"Done"}}"#),
            r#"work item i1: state has no "id""#
        );
        assert_eq!(
            shape_error(r#"{"id":"i1","project":"p","state":5}"#),
            "work item i1: state is not a JSON object"
        );
        assert_eq!(
            shape_error(r#"{"id":"i1","project":"p","assignees":["u1",{"display_name":"x"}]}"#),
            "work item i1: user without id"
        );
        assert_eq!(
            shape_error(r#"{"id":"i1","project":"p","labels":[{"name":"bug"}]}"#),
            "work item i1: label without id"
        );
        for bad in ["", "{", r#"{"id":"i1",}"#, r#"{"id":"i1"} x"#, "<html>"] {
            assert_eq!(item(bad), Err(ReadError::NotJson), "{bad:?}");
        }
    }

    #[test]
    fn users_read_as_the_member_list_reads_them() {
        for json in [
            r#""u1""#,
            r#"{"id":"u1","display_name":"ann","email":"a@x"}"#,
            r#"{"id":"u1","first_name":"Ann","last_name":"Lee"}"#,
            r#"{"id":"u1","first_name":"Ann"}"#,
            r#"{"member":{"id":"u2","display_name":"bob"},"id":"m1","role":20}"#,
            r#"{"member":"u3","id":"m1"}"#,
        ] {
            let expected = Member::from_json(&miniserde::json::from_str(json).unwrap()).unwrap();
            let wrapped = format!(r#"{{"id":"i","project":"p","assignees":[{json}]}}"#);
            assert_eq!(item(&wrapped).unwrap().assignees, [expected], "{json}");
        }
        let m = &item(r#"{"id":"i","project":"p","assignees":[{"member":{"id":"u2","first_name":"Bo","last_name":"Li"}}]}"#)
            .unwrap()
            .assignees[0];
        assert_eq!((m.id.as_str(), m.display_name.as_str()), ("u2", "Bo Li"));
    }

    #[test]
    fn pages_keep_readable_items_and_report_the_others() {
        let page = item_page(
            r#"{"next_cursor":"100:1:0","results":[{"id":"i1","project":"p"},7,
            {"id":"i2"},{"id":"i3","project":"p"}],"next_page_results":true,"count":3}"#,
        )
        .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("100:1:0"));
        let ids: Vec<_> = page
            .items
            .iter()
            .map(|r| r.as_ref().map(|w| w.id.as_str()).map_err(|e| e.0.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                Ok("i1"),
                Err("work item is not a JSON object"),
                Err("work item i2: no project"),
                Ok("i3")
            ]
        );
        let last = item_page(r#"{"results":[],"next_cursor":"100:1:0","next_page_results":false}"#)
            .unwrap();
        assert_eq!((last.items.len(), last.next_cursor), (0, None));
        let bare = item_page(r#"[{"id":"i1","project":"p"}]"#).unwrap();
        assert_eq!((bare.items.len(), bare.next_cursor), (1, None));
        let no_results = |json: &str| match item_page(json) {
            Err(ReadError::Shape(e)) => e.0,
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(
            no_results(r#"{"detail":"x"}"#),
            r#"page has no "results" array"#
        );
        assert_eq!(
            no_results(r#"{"results":{}}"#),
            r#"page has no "results" array"#
        );
        assert_eq!(no_results("42"), "page is neither an object nor an array");
        assert!(matches!(
            item_page(r#"{"results":[{"id":"i1"#),
            Err(ReadError::NotJson)
        ));
    }
}
