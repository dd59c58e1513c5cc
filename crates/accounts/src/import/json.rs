//! EF Core's `AspNetUsers` table exported as JSON (SQL Server's `FOR JSON PATH`, Azure Data
//! Studio's or any tool's "save as JSON"): an array of objects with the table's columns.
//!
//! Read: `Id`, `Email` (else `NormalizedEmail`), `EmailConfirmed` (`true`/`false` or `1`/`0`),
//! `PasswordHash`, `TwoFactorEnabled`, `LockoutEnd` (a `datetimeoffset`, e.g.
//! `2030-01-01T00:00:00.0000000+00:00`, or `null`). Other columns are ignored.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::{SourceRow, SourceUser};

/// Why a JSON export cannot be read at all (a malformed element is a [`SourceRow::Malformed`]).
#[derive(Debug, thiserror::Error)]
pub enum JsonExportError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an array of rows.
    #[error("expected a JSON array of AspNetUsers rows")]
    NotAnArray,
}

/// The rows of an export, in order.
pub fn rows(text: &str) -> Result<Vec<SourceRow>, JsonExportError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| JsonExportError::NotJson(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(JsonExportError::NotAnArray);
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| row(i, item))
        .collect())
}

fn row(position: usize, item: &Value) -> SourceRow {
    let which = || match item.get("Id").and_then(Value::as_str) {
        Some(id) => format!("row {} (Id {id})", position + 1),
        None => format!("row {}", position + 1),
    };
    match item.as_object().ok_or("not an object").and_then(user) {
        Ok(user) => SourceRow::User(user),
        Err(why) => SourceRow::Malformed {
            which: which(),
            why: why.to_owned(),
        },
    }
}

fn user(o: &Map<String, Value>) -> Result<SourceUser, &'static str> {
    let id = match o.get("Id") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err("no Id"),
    };
    let email = match (text(o, "Email")?, text(o, "NormalizedEmail")?) {
        (Some(email), _) => Some(email),
        // The normalized form is upper case; ringfence's normalization lowers it again.
        (None, normalized) => normalized,
    };
    Ok(SourceUser {
        id,
        email,
        email_confirmed: flag(o, "EmailConfirmed")?,
        password_hash: text(o, "PasswordHash")?,
        two_factor_enabled: flag(o, "TwoFactorEnabled")?,
        lockout_end: time(o, "LockoutEnd")?,
        deleted: false,
        created_at: None,
    })
}

/// A string column; `null` or absent is `None`, another type is an error.
fn text(o: &Map<String, Value>, key: &'static str) -> Result<Option<String>, &'static str> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(match key {
            "Email" => "Email is not a string",
            "NormalizedEmail" => "NormalizedEmail is not a string",
            "PasswordHash" => "PasswordHash is not a string",
            _ => "a text column is not a string",
        }),
    }
}

/// A `bit` column: JSON `true`/`false` or `1`/`0`; absent or `null` is `false`.
fn flag(o: &Map<String, Value>, key: &'static str) -> Result<bool, &'static str> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(_) => Err(match key {
            "EmailConfirmed" => "EmailConfirmed is not a boolean",
            _ => "TwoFactorEnabled is not a boolean",
        }),
    }
}

/// A `datetimeoffset` column (RFC 3339, any number of fractional digits); without an offset it
/// is taken as UTC.
fn time(o: &Map<String, Value>, key: &'static str) -> Result<Option<DateTime<Utc>>, &'static str> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(Some(t.with_timezone(&Utc)));
            }
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| Some(t.and_utc()))
                .map_err(|_| "LockoutEnd is not a date and time")
        }
        Some(_) => Err("LockoutEnd is not a date and time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_columns_and_reports_malformed_rows() {
        let text = r#"[
            {"Id": "6f1c", "UserName": "Ann", "Email": "Ann@Example.com", "EmailConfirmed": true,
             "PasswordHash": "AQAA", "TwoFactorEnabled": 1,
             "LockoutEnd": "9999-12-31T23:59:59.9999999+00:00", "AccessFailedCount": 0},
            {"Id": "7a2d", "Email": null, "NormalizedEmail": "BOB@EXAMPLE.COM", "EmailConfirmed": 0,
             "PasswordHash": null, "LockoutEnd": "2030-01-01T00:00:00"},
            {"Id": "8b3e", "Email": 42},
            "not an object",
            {"Email": "x@example.com"}
        ]"#;
        let rows = rows(text).unwrap();
        assert_eq!(rows.len(), 5);
        let SourceRow::User(ann) = &rows[0] else {
            panic!("{:?}", rows[0])
        };
        assert_eq!(ann.id, "6f1c");
        assert_eq!(ann.email.as_deref(), Some("Ann@Example.com"));
        assert!(ann.email_confirmed && ann.two_factor_enabled && !ann.deleted);
        assert_eq!(ann.password_hash.as_deref(), Some("AQAA"));
        assert_eq!(ann.lockout_end.unwrap().format("%Y").to_string(), "9999");
        let SourceRow::User(bob) = &rows[1] else {
            panic!("{:?}", rows[1])
        };
        assert_eq!(bob.email.as_deref(), Some("BOB@EXAMPLE.COM"));
        assert!(!bob.email_confirmed && bob.password_hash.is_none());
        assert_eq!(
            bob.lockout_end.unwrap().to_rfc3339(),
            "2030-01-01T00:00:00+00:00"
        );
        assert_eq!(
            rows[2],
            SourceRow::Malformed {
                which: "row 3 (Id 8b3e)".into(),
                why: "Email is not a string".into()
            }
        );
        assert!(matches!(&rows[3], SourceRow::Malformed { which, .. } if which == "row 4"));
        assert!(matches!(&rows[4], SourceRow::Malformed { why, .. } if why == "no Id"));
    }

    #[test]
    fn a_file_that_is_not_an_array_of_rows_is_an_error() {
        assert!(matches!(
            rows("{\"a\": 1}"),
            Err(JsonExportError::NotAnArray)
        ));
        assert!(matches!(rows("[1, 2"), Err(JsonExportError::NotJson(_))));
        assert!(rows("[]").unwrap().is_empty());
    }
}
