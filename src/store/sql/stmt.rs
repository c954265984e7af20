//! A statement as data: SQL text with `$n` placeholders, its arguments, and
//! what it means when it touches no row. The shared SQL is written once as
//! [`Stmt`]s; each backend only knows how to bind an [`Arg`] and run them.

use std::borrow::Cow;

use uuid::Uuid;

use crate::store::Error;

/// One bound value. The schema uses only these portable types (ids as UUID
/// text, unix-ms integers, booleans, JSON as text), so both backends bind
/// every statement the same way.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::Text(s.clone())
    }
}

impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Self {
        Arg::OptText(s)
    }
}

impl From<&Option<String>> for Arg {
    fn from(s: &Option<String>) -> Self {
        Arg::OptText(s.clone())
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl From<Option<i64>> for Arg {
    fn from(n: Option<i64>) -> Self {
        Arg::OptInt(n)
    }
}

impl From<bool> for Arg {
    fn from(b: bool) -> Self {
        Arg::Bool(b)
    }
}

impl From<Uuid> for Arg {
    fn from(id: Uuid) -> Self {
        Arg::Text(id.to_string())
    }
}

impl From<Option<Uuid>> for Arg {
    fn from(id: Option<Uuid>) -> Self {
        Arg::OptText(id.map(|u| u.to_string()))
    }
}

/// What a write statement that touched no row means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnNoRow {
    /// Nothing: the statement is idempotent (revoke all keys, …).
    Fine,
    /// The row to change does not exist.
    NotFound,
    /// The row exists but no longer matches what the write was based on.
    Stale,
}

impl OnNoRow {
    pub(crate) fn check(self, rows_affected: u64) -> Result<(), Error> {
        match (rows_affected, self) {
            (0, OnNoRow::NotFound) => Err(Error::NotFound),
            (0, OnNoRow::Stale) => Err(Error::Stale),
            _ => Ok(()),
        }
    }
}

/// A statement and its arguments, in placeholder order. Placeholders are
/// `$1…`: PostgreSQL's, which SQLite reads as parameters bound in order of
/// first appearance (every statement here introduces them in order).
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub(crate) sql: Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
    pub(crate) on_no_row: OnNoRow,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
            on_no_row: OnNoRow::Fine,
        }
    }

    pub(crate) fn arg(mut self, a: impl Into<Arg>) -> Self {
        self.args.push(a.into());
        self
    }

    pub(crate) fn args<A: Into<Arg>>(mut self, all: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(all.into_iter().map(Into::into));
        self
    }

    /// Appends SQL that introduces the next placeholder, bound to `a`.
    pub(crate) fn push_arg(&mut self, sql: &str, a: impl Into<Arg>) {
        self.args.push(a.into());
        let sql = format!("{sql}${}", self.args.len());
        self.sql.to_mut().push_str(&sql);
    }

    pub(crate) fn push(&mut self, sql: &str) {
        self.sql.to_mut().push_str(sql);
    }

    pub(crate) fn or_not_found(mut self) -> Self {
        self.on_no_row = OnNoRow::NotFound;
        self
    }

    pub(crate) fn or_stale(mut self) -> Self {
        self.on_no_row = OnNoRow::Stale;
        self
    }
}

/// Binds `args` in order; written once for both backends.
pub(crate) fn bind_all<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::OptText(s) => q.bind(s),
            Arg::Int(n) => q.bind(n),
            Arg::OptInt(n) => q.bind(n),
            Arg::Bool(b) => q.bind(b),
        };
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_arguments_number_their_placeholders_in_order() {
        let mut s = Stmt::new("SELECT * FROM t WHERE id > ").arg("x");
        s.sql = Cow::Borrowed("SELECT * FROM t WHERE a = $1");
        s.push_arg(" AND b = ", 2i64);
        s.push(" ORDER BY id");
        assert_eq!(s.sql, "SELECT * FROM t WHERE a = $1 AND b = $2 ORDER BY id");
        assert_eq!(s.args.len(), 2);
    }

    #[test]
    fn no_row_means_what_the_statement_says() {
        assert!(OnNoRow::Fine.check(0).is_ok());
        assert!(matches!(OnNoRow::NotFound.check(0), Err(Error::NotFound)));
        assert!(matches!(OnNoRow::Stale.check(0), Err(Error::Stale)));
        assert!(OnNoRow::Stale.check(1).is_ok());
    }
}
