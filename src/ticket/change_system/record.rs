//! What the Table API says about a change request: parsed strictly from its JSON answers.

use serde_json::Value;
use time::PrimitiveDateTime;
use time::macros::format_description;

use crate::ticket::shown;

/// A change request as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangeRecord {
    /// The change number, e.g. `CHG0012345`.
    pub(crate) number: String,
    /// The record's `sys_id` (32 hex digits).
    pub(crate) sys_id: String,
    /// The raw `state` code.
    pub(crate) state: i64,
    /// Planned start, unix seconds (`None` when empty).
    pub(crate) start: Option<i64>,
    /// Planned end, unix seconds (`None` when empty).
    pub(crate) end: Option<i64>,
    /// Names of the change's configuration item (`cmdb_ci.name`) and affected CIs (`task_ci`).
    pub(crate) ci_names: Vec<String>,
}

/// Why an answer cannot be used; the text follows "change system sent an unusable answer: ".
pub(crate) type Malformed = String;

/// The `result` array of a Table API answer.
pub(crate) fn result_rows(body: &[u8]) -> Result<Vec<serde_json::Map<String, Value>>, Malformed> {
    let value: Value = serde_json::from_slice(body).map_err(|err| format!("not JSON ({err})"))?;
    let Some(rows) = value.get("result").and_then(Value::as_array) else {
        return Err("no \"result\" array".to_owned());
    };
    rows.iter()
        .map(|row| {
            row.as_object()
                .cloned()
                .ok_or_else(|| "a result row is not an object".to_owned())
        })
        .collect()
}

/// A string field of a row; missing is an error, `""` is allowed.
fn field<'a>(row: &'a serde_json::Map<String, Value>, name: &str) -> Result<&'a str, Malformed> {
    match row.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("field {name} is not a string")),
        None => Err(format!("field {name} is missing")),
    }
}

/// Parses one `change_request` row (without its affected CIs yet).
pub(crate) fn change_row(row: &serde_json::Map<String, Value>) -> Result<ChangeRecord, Malformed> {
    let number = field(row, "number")?.to_owned();
    let sys_id = field(row, "sys_id")?;
    if sys_id.len() != 32 || !sys_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("sys_id '{}' is not 32 hex digits", shown(sys_id)));
    }
    let state_text = field(row, "state")?;
    let state = state_text
        .trim()
        .parse()
        .map_err(|_| format!("state '{}' is not a state code", shown(state_text)))?;
    let mut ci_names = Vec::new();
    // Dot-walked reference: absent when the instance has no such field, "" when unset.
    if let Some(Value::String(name)) = row.get("cmdb_ci.name")
        && !name.is_empty()
    {
        ci_names.push(name.clone());
    }
    Ok(ChangeRecord {
        number,
        sys_id: sys_id.to_ascii_lowercase(),
        state,
        start: date_time(row, "start_date")?,
        end: date_time(row, "end_date")?,
        ci_names,
    })
}

/// The `ci_item.name` of each `task_ci` row (empty names skipped).
pub(crate) fn ci_rows(rows: &[serde_json::Map<String, Value>]) -> Result<Vec<String>, Malformed> {
    let mut names = Vec::new();
    for row in rows {
        let name = field(row, "ci_item.name")?;
        if !name.is_empty() {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// A Table API date-time (`YYYY-MM-DD HH:MM:SS`, UTC) as unix seconds; `""` is `None`.
fn date_time(row: &serde_json::Map<String, Value>, name: &str) -> Result<Option<i64>, Malformed> {
    let text = field(row, name)?;
    if text.is_empty() {
        return Ok(None);
    }
    PrimitiveDateTime::parse(
        text,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
    )
    .map(|t| Some(t.assume_utc().unix_timestamp()))
    .map_err(|_| {
        format!(
            "{name} '{}' is not a date-time like 2026-12-01 06:00:00",
            shown(text)
        )
    })
}

/// `2026-12-01 06:00 UTC` for unix seconds, as reasons show times.
pub(crate) fn utc_minutes(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| format!("{secs} (unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_ID: &str = "a9e30c7dc61122760116894de7bcc7bd";
    /// 2026-12-01 02:00:00 UTC (`date -u -d "2026-12-01 02:00:00" +%s`).
    const START: i64 = 1_796_090_400;

    fn row(json: Value) -> serde_json::Map<String, Value> {
        json.as_object().expect("object").clone()
    }

    #[test]
    fn parses_a_change_as_the_table_api_returns_it() {
        let rows = result_rows(
            br#"{"result":[{"sys_id":"a9e30c7dc61122760116894de7bcc7bd","number":"CHG0012345",
                "state":"-1","start_date":"2026-12-01 02:00:00","end_date":"2026-12-01 06:00:00",
                "cmdb_ci.name":"esx-21"}]}"#,
        )
        .expect("rows");
        let record = change_row(&rows[0]).expect("record");
        assert_eq!(record.number, "CHG0012345");
        assert_eq!(record.sys_id, SYS_ID);
        assert_eq!(record.state, -1);
        assert_eq!(record.start, Some(START));
        assert_eq!(
            record.end.zip(record.start).map(|(e, s)| e - s),
            Some(4 * 3600)
        );
        assert_eq!(record.ci_names, vec!["esx-21".to_owned()]);
        assert_eq!(
            utc_minutes(record.end.expect("end")),
            "2026-12-01 06:00 UTC"
        );
    }

    #[test]
    fn empty_fields_and_bad_fields() {
        let record = change_row(&row(serde_json::json!({
            "sys_id": SYS_ID, "number": "CHG1", "state": "3", "start_date": "", "end_date": "",
            "cmdb_ci.name": ""
        })))
        .expect("record");
        assert_eq!((record.start, record.end), (None, None));
        assert!(record.ci_names.is_empty());

        for (patch, expected) in [
            (
                serde_json::json!({"state": "implement"}),
                "state 'implement' is not a state code",
            ),
            (
                serde_json::json!({"state": -1}),
                "field state is not a string",
            ),
            (
                serde_json::json!({"sys_id": "x^y"}),
                "sys_id 'x^y' is not 32 hex digits",
            ),
            (
                serde_json::json!({"start_date": "2026-12-01T02:00:00Z"}),
                "start_date '2026-12-01T02:00:00Z' is not a date-time",
            ),
        ] {
            let mut fields = row(serde_json::json!({
                "sys_id": SYS_ID, "number": "CHG1", "state": "-1",
                "start_date": "2026-12-01 02:00:00", "end_date": "2026-12-01 06:00:00"
            }));
            for (k, v) in patch.as_object().expect("patch") {
                fields.insert(k.clone(), v.clone());
            }
            let err = change_row(&fields).expect_err("malformed");
            assert!(err.starts_with(expected), "{err}");
        }
        let mut missing = row(serde_json::json!({"sys_id": SYS_ID, "number": "CHG1"}));
        missing.remove("number");
        assert_eq!(
            change_row(&missing).expect_err("missing"),
            "field number is missing"
        );
    }

    #[test]
    fn answers_that_are_not_table_results() {
        assert!(
            result_rows(b"<html>login</html>")
                .expect_err("html")
                .starts_with("not JSON")
        );
        assert_eq!(
            result_rows(br#"{"error":{"message":"x"},"status":"failure"}"#).expect_err("error"),
            "no \"result\" array"
        );
        assert_eq!(
            result_rows(br#"{"result":["x"]}"#).expect_err("row"),
            "a result row is not an object"
        );
        let rows = result_rows(br#"{"result":[{"ci_item.name":"esx-21"},{"ci_item.name":""}]}"#)
            .expect("rows");
        assert_eq!(ci_rows(&rows).expect("names"), vec!["esx-21".to_owned()]);
    }
}
