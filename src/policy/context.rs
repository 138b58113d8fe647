//! The request context as Cedar values, built from the gateway's JSON without Cedar's JSON
//! parser, whose schema-directed pass tries each value form in turn and builds and drops an
//! error for every miss: most of a decision's time before this path existed (BENCHMARKS.md).

use cedar_policy::{Context, RestrictedExpression};
use serde_json::Value;

use super::checked::ShapeKey;
use super::kept::Kept;

/// The context field the schema types as `ipaddr`; every other field is a plain value.
const CLIENT_IP: &str = "client_ip";

/// How many client addresses' `ip` values [`IpValues`] keeps.
const KEPT_ADDRESSES: usize = 1024;

/// The `ip` values of recently seen client addresses. Cedar parses the name of its `ip`
/// extension function with its policy parser every time it builds one: a quarter of a
/// decision's time (BENCHMARKS.md), where a kept value costs a clone.
pub(crate) type IpValues = Kept<String, RestrictedExpression, KEPT_ADDRESSES>;

/// `context` as Cedar values: strings, longs, booleans, records and sets as they are, and
/// `client_ip` as an `ip` value. `None` when it holds anything else (null, a fraction, a
/// malformed address); the caller then falls back to Cedar's schema-directed parser, and the
/// schema check of the request decides either way. The context's shape is added to `shape`.
pub(super) fn fast_context(
    context: &Value,
    ip_values: &IpValues,
    shape: &mut ShapeKey,
) -> Option<Context> {
    let Value::Object(fields) = context else {
        return None;
    };
    shape.record();
    // Sized up front: collecting into `Option<Vec<_>>` knows no length and grows the vector
    // by doubling.
    let mut pairs = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        shape.field(name);
        let value = match (name.as_str(), value) {
            (CLIENT_IP, Value::String(address)) => {
                shape.ip();
                ip_values.get_or_insert(address.as_str(), || RestrictedExpression::new_ip(address))
            }
            _ => restricted(value, shape)?,
        };
        pairs.push((name.clone(), value));
    }
    shape.end();
    Context::from_pairs(pairs).ok()
}

fn restricted(value: &Value, shape: &mut ShapeKey) -> Option<RestrictedExpression> {
    Some(match value {
        Value::Bool(b) => {
            shape.boolean();
            RestrictedExpression::new_bool(*b)
        }
        Value::Number(n) => {
            shape.long();
            RestrictedExpression::new_long(n.as_i64()?)
        }
        Value::String(s) => {
            shape.string();
            RestrictedExpression::new_string(s.clone())
        }
        Value::Array(items) => {
            shape.set();
            let mut elements = Vec::with_capacity(items.len());
            for item in items {
                elements.push(restricted(item, shape)?);
            }
            shape.end();
            RestrictedExpression::new_set(elements)
        }
        Value::Object(fields) => {
            shape.record();
            let mut pairs = Vec::with_capacity(fields.len());
            for (name, value) in fields {
                shape.field(name);
                pairs.push((name.clone(), restricted(value, shape)?));
            }
            shape.end();
            RestrictedExpression::new_record(pairs).ok()?
        }
        Value::Null => return None,
    })
}
