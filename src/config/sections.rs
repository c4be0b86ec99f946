//! The `--config` file's structured, file-only sections: TOML tables (`[name]`) and arrays
//! of tables (`[[name]]`) that have no flag. [`SECTIONS`] is the registry: each section's
//! name, its kind and its fields with their TOML types. One walker checks any registered
//! section against its entry (kind, field names, field types, required fields), naming the
//! line and `section.field` of each problem with a "did you mean" hint for a misspelt name;
//! then each section's own builder turns the checked fields into typed rules and refuses
//! values that can never work. The result is [`FileSections`], carried to
//! [`crate::Config::file_sections`].
//!
//! Registered today: `[[headers]]` ([`HeaderRule`]) and `[[redirects]]` ([`RedirectRule`]),
//! the operator's site rules, built with the same pattern and header parsers as the
//! `_headers` and `_redirects` files ([`crate::rules`]). This module only reads and checks
//! them; it must not apply them to responses (the app does that, from `Config`). To add a section: an entry in
//! [`SECTIONS`], a field of [`FileSections`], a rule type and its builder called from `take`.

use std::sync::Arc;

use http::StatusCode;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::problem::{did_you_mean, FileProblem};
use crate::rules::{
    self, header_op, HeaderRule, Origin, Pattern, QueryCondition, QueryValue, RedirectRule,
};

/// How a section is written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// One table, `[name]`.
    Table,
    /// Any number of tables, each `[[name]]` (an array of tables).
    Array,
}

/// The TOML type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A table whose values are strings (`{ Name = "value" }`).
    StringTable,
}

impl FieldType {
    /// The type as an error message names it.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Boolean => "true or false",
            Self::StringTable => "a table of strings",
        }
    }
}

/// One field of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The key inside the section's table.
    pub name: &'static str,
    /// Its TOML type.
    pub ty: FieldType,
    /// Whether every entry must have it.
    pub required: bool,
}

/// One file-only section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionSpec {
    /// The top-level key (`headers` for `[[headers]]`).
    pub name: &'static str,
    /// Table or array of tables.
    pub kind: SectionKind,
    /// Its fields; any other key is refused.
    pub fields: &'static [FieldSpec],
}

const fn field(name: &'static str, ty: FieldType, required: bool) -> FieldSpec {
    FieldSpec { name, ty, required }
}

/// Every file-only section the file may hold.
pub const SECTIONS: &[SectionSpec] = &[
    SectionSpec {
        name: "headers",
        kind: SectionKind::Array,
        fields: &[
            field("for", FieldType::String, true),
            field("values", FieldType::StringTable, true),
        ],
    },
    SectionSpec {
        name: "redirects",
        kind: SectionKind::Array,
        fields: &[
            field("from", FieldType::String, true),
            field("to", FieldType::String, true),
            field("status", FieldType::Integer, false),
            field("force", FieldType::Boolean, false),
            field("query", FieldType::StringTable, false),
        ],
    },
];

/// The file-only sections of a `--config` file, read and checked; empty without a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSections {
    /// `[[headers]]`, in file order; each rule's origin is the file and the line of its
    /// `[[headers]]`.
    pub headers: Vec<HeaderRule>,
    /// `[[redirects]]`, in file order; each rule's origin is the file and the line of its
    /// `[[redirects]]`.
    pub redirects: Vec<RedirectRule>,
}

/// Takes every registered section out of the file's top-level table, and every other table
/// or array of tables whose name `is_flag_key` does not know (an unknown section), leaving
/// the flag keys; returns the typed sections and the problems found (empty when all is
/// well). `text` is the file, for line numbers; `file` its name as the operator gave it,
/// for the rules' origins.
pub(crate) fn take(
    root: &mut DeTable<'_>,
    text: &str,
    file: &str,
    is_flag_key: impl Fn(&str) -> bool,
) -> (FileSections, Vec<FileProblem>) {
    let file: Arc<str> = file.into();
    let mut out = FileSections::default();
    let mut problems = Vec::new();
    let names: Vec<String> = root.keys().map(|k| k.get_ref().to_string()).collect();
    for name in names {
        let Some((key, value)) = root.remove_entry(name.as_str()) else {
            continue;
        };
        let line = line_of(text, key.span().start);
        let Some(spec) = SECTIONS.iter().find(|s| s.name == name) else {
            if is_flag_key(&name) || !looks_like_section(value.get_ref()) {
                root.insert(key, value);
            } else {
                let known: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
                problems.push(FileProblem::at(
                    line,
                    name.as_str(),
                    format!(
                        "unknown section (sections: {}){}",
                        known.join(", "),
                        did_you_mean(&name, known.iter().copied())
                    ),
                ));
            }
            continue;
        };
        let entries = entries(spec, line, &value, text, &mut problems);
        match spec.name {
            "headers" => out.headers.extend(
                entries
                    .into_iter()
                    .filter_map(|e| header_rule(e, &file, &mut problems)),
            ),
            "redirects" => out.redirects.extend(
                entries
                    .into_iter()
                    .filter_map(|e| redirect_rule(e, &file, &mut problems)),
            ),
            _ => {}
        }
    }
    (out, problems)
}

/// A table, or a non-empty array of tables: what a section looks like.
fn looks_like_section(value: &DeValue<'_>) -> bool {
    match value {
        DeValue::Table(_) => true,
        DeValue::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|i| matches!(i.get_ref(), DeValue::Table(_)))
        }
        _ => false,
    }
}

/// A field's value, of the type its spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldValue {
    String(String),
    Integer(i64),
    Boolean(bool),
    /// Keys and values with the line of each.
    StringTable(Vec<(String, String, usize)>),
}

/// One table of a section with its fields checked against the spec: every key known, every
/// value of its type, every required field present.
#[derive(Debug)]
struct Entry {
    section: &'static str,
    line: usize,
    fields: Vec<(&'static str, usize, FieldValue)>,
}

impl Entry {
    fn get(&self, name: &str) -> Option<(usize, &FieldValue)> {
        self.fields
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, line, v)| (*line, v))
    }

    fn string(&self, name: &str) -> Option<(usize, &str)> {
        match self.get(name) {
            Some((line, FieldValue::String(s))) => Some((line, s)),
            _ => None,
        }
    }

    fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.section)
    }
}

/// The entries of one section, each checked against `spec`; problems go to `problems`
/// and an entry with any is left out.
fn entries(
    spec: &SectionSpec,
    line: usize,
    value: &Spanned<DeValue<'_>>,
    text: &str,
    problems: &mut Vec<FileProblem>,
) -> Vec<Entry> {
    let name = spec.name;
    let mut wrong = |reason: String| {
        problems.push(FileProblem::at(line, name, reason));
        Vec::new()
    };
    match (spec.kind, value.get_ref()) {
        (SectionKind::Array, DeValue::Array(items)) => {
            let mut out = Vec::new();
            for item in items.iter() {
                let at = line_of(text, item.span().start);
                match item.get_ref() {
                    DeValue::Table(table) => {
                        out.extend(entry(spec, at, table, text, problems));
                    }
                    other => problems.push(FileProblem::at(
                        at,
                        name,
                        format!("expects tables (`[[{name}]]`), not {}", describe(other)),
                    )),
                }
            }
            out
        }
        (SectionKind::Array, DeValue::Table(_)) => wrong(format!(
            "is a table; write each entry as `[[{name}]]` (an array of tables), not `[{name}]`"
        )),
        (SectionKind::Table, DeValue::Table(table)) => entry(spec, line, table, text, problems)
            .into_iter()
            .collect(),
        (SectionKind::Table, DeValue::Array(_)) => wrong(format!(
            "is an array of tables; write it once as `[{name}]`, not `[[{name}]]`"
        )),
        (SectionKind::Array, other) => wrong(format!(
            "expects an array of tables (`[[{name}]]`), not {}",
            describe(other)
        )),
        (SectionKind::Table, other) => wrong(format!(
            "expects a table (`[{name}]`), not {}",
            describe(other)
        )),
    }
}

/// One table of a section, checked against `spec`.
fn entry(
    spec: &SectionSpec,
    line: usize,
    table: &DeTable<'_>,
    text: &str,
    problems: &mut Vec<FileProblem>,
) -> Option<Entry> {
    let before = problems.len();
    let mut fields = Vec::new();
    let field_names = || spec.fields.iter().map(|f| f.name);
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        let key_name = format!("{}.{name}", spec.name);
        let Some(field) = spec.fields.iter().find(|f| f.name == name) else {
            let all: Vec<&str> = field_names().collect();
            problems.push(FileProblem::at(
                line_of(text, key.span().start),
                key_name,
                format!(
                    "unknown field (fields of `{}`: {}){}",
                    spec.name,
                    all.join(", "),
                    did_you_mean(name, field_names())
                ),
            ));
            continue;
        };
        let at = line_of(text, value.span().start);
        match typed(field.ty, value, text) {
            Ok(v) => fields.push((field.name, at, v)),
            Err((at, suffix, reason)) => {
                problems.push(FileProblem::at(at, format!("{key_name}{suffix}"), reason));
            }
        }
    }
    for missing in spec
        .fields
        .iter()
        .filter(|f| f.required && !table.contains_key(f.name))
    {
        problems.push(FileProblem::at(
            line,
            format!("{}.{}", spec.name, missing.name),
            format!(
                "is missing: every `{}` entry needs {}",
                spec.name,
                missing.ty.describe()
            ),
        ));
    }
    (problems.len() == before).then_some(Entry {
        section: spec.name,
        line,
        fields,
    })
}

/// The value as `ty`, or the line, key suffix (`.Name` inside a table) and reason.
fn typed(
    ty: FieldType,
    value: &Spanned<DeValue<'_>>,
    text: &str,
) -> Result<FieldValue, (usize, String, String)> {
    let line = line_of(text, value.span().start);
    let wrong = |v: &DeValue<'_>| {
        (
            line,
            String::new(),
            format!("expects {}, not {}", ty.describe(), describe(v)),
        )
    };
    match (ty, value.get_ref()) {
        (FieldType::String, DeValue::String(s)) => Ok(FieldValue::String(s.to_string())),
        (FieldType::Integer, DeValue::Integer(i)) => i64::from_str_radix(i.as_str(), i.radix())
            .map(FieldValue::Integer)
            .map_err(|_| (line, String::new(), format!("{i} is out of range"))),
        (FieldType::Boolean, DeValue::Boolean(b)) => Ok(FieldValue::Boolean(*b)),
        (FieldType::StringTable, DeValue::Table(table)) => {
            let mut out = Vec::new();
            for (k, v) in table {
                let at = line_of(text, v.span().start);
                match v.get_ref() {
                    DeValue::String(s) => out.push((k.get_ref().to_string(), s.to_string(), at)),
                    other => {
                        return Err((
                            at,
                            format!(".{}", k.get_ref()),
                            format!("expects a string, not {}", describe(other)),
                        ))
                    }
                }
            }
            Ok(FieldValue::StringTable(out))
        }
        (_, other) => Err(wrong(other)),
    }
}

fn header_rule(
    entry: Entry,
    file: &Arc<str>,
    problems: &mut Vec<FileProblem>,
) -> Option<HeaderRule> {
    let before = problems.len();
    let pattern = pattern(&entry, "for", problems);
    let mut ops = Vec::new();
    if let Some((line, FieldValue::StringTable(table))) = entry.get("values") {
        if table.is_empty() {
            problems.push(FileProblem::at(
                line,
                entry.key("values"),
                "is empty: name at least one header",
            ));
        }
        for (name, value, at) in table {
            match header_op::parse(name, value.trim()) {
                Ok(op) => header_op::push(&mut ops, op),
                Err(reason) => problems.push(FileProblem::at(
                    *at,
                    format!("{}.{name}", entry.key("values")),
                    reason,
                )),
            }
        }
    }
    (problems.len() == before).then_some(HeaderRule {
        origin: Origin::new(file.clone(), entry.line),
        pattern: pattern?,
        ops,
    })
}

/// The pattern in `field`, or a problem naming it.
fn pattern(entry: &Entry, field: &str, problems: &mut Vec<FileProblem>) -> Option<Pattern> {
    let (line, value) = entry.string(field)?;
    Pattern::parse(value)
        .map_err(|reason| problems.push(FileProblem::at(line, entry.key(field), reason)))
        .ok()
}

fn redirect_rule(
    entry: Entry,
    file: &Arc<str>,
    problems: &mut Vec<FileProblem>,
) -> Option<RedirectRule> {
    let before = problems.len();
    let from = pattern(&entry, "from", problems);
    let status = match entry.get("status") {
        None => Some(StatusCode::MOVED_PERMANENTLY),
        Some((line, FieldValue::Integer(n))) => {
            let known = rules::rule_status(*n);
            if known.is_none() {
                problems.push(FileProblem::at(
                    line,
                    entry.key("status"),
                    format!("{n} is not one of {}", rules::statuses_list()),
                ));
            }
            known
        }
        Some(_) => None,
    };
    let to = entry.string("to").and_then(|(line, to)| {
        // Without a valid status, only the form of the target can be checked.
        let problem = rules::target_problem(to, status.unwrap_or(StatusCode::MOVED_PERMANENTLY));
        match problem {
            None => Some(to.to_owned()),
            Some(reason) => {
                problems.push(FileProblem::at(line, entry.key("to"), reason));
                None
            }
        }
    });
    let mut query = Vec::new();
    if let Some((_, FieldValue::StringTable(table))) = entry.get("query") {
        for (name, value, at) in table {
            let Ok(value) = QueryValue::parse(value, str::to_owned) else {
                problems.push(FileProblem::at(
                    *at,
                    format!("{}.{name}", entry.key("query")),
                    format!(
                        "{value:?}: a captured value is `:placeholder` (letters, digits and _)"
                    ),
                ));
                continue;
            };
            query.push(QueryCondition {
                name: name.clone(),
                value,
            });
        }
    }
    let force = matches!(entry.get("force"), Some((_, FieldValue::Boolean(true))));
    (problems.len() == before).then_some(RedirectRule {
        origin: Origin::new(file.clone(), entry.line),
        from: from?,
        query,
        to: to?,
        status: status?,
        force,
    })
}

/// A value as an error message shows it.
fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(x) => x.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: SectionSpec = SectionSpec {
        name: "site",
        kind: SectionKind::Table,
        fields: &[field("name", FieldType::String, true)],
    };

    fn check(spec: &SectionSpec, text: &str) -> (usize, Vec<FileProblem>) {
        let root = DeTable::parse(text).unwrap().into_inner();
        let (key, value) = root.iter().next().unwrap();
        let mut problems = Vec::new();
        let line = line_of(text, key.span().start);
        let entries = entries(spec, line, value, text, &mut problems);
        (entries.len(), problems)
    }

    #[test]
    fn a_table_section_takes_one_table_and_refuses_an_array_of_them() {
        assert_eq!(check(&TABLE, "[site]\nname = \"a\"\n"), (1, vec![]));
        let (n, problems) = check(&TABLE, "\n[[site]]\nname = \"a\"\n");
        assert_eq!(n, 0);
        assert_eq!(
            problems,
            [FileProblem::at(
                2,
                "site",
                "is an array of tables; write it once as `[site]`, not `[[site]]`"
            )]
        );
    }

    #[test]
    fn no_registered_section_names_a_field_twice() {
        for spec in SECTIONS {
            let mut names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), spec.fields.len(), "{}", spec.name);
        }
    }
}
