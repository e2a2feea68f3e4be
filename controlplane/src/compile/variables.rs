//! Stage variables: AWS's rules for names and values, and their substitution into URIs.

use super::common::Errors;
use crate::manifest::Located;
use proto::table::Variable;
use std::collections::BTreeMap;

pub(super) fn to_variables(variables: &BTreeMap<String, String>) -> Vec<Variable> {
    variables.iter().map(|(n, v)| Variable { name: n.clone(), value: v.clone() }).collect()
}

pub(super) fn check_variables<T>(
    doc: &Located<T>,
    field: &str,
    variables: &BTreeMap<String, String>,
    errors: &mut Errors,
) {
    for (name, value) in variables {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            errors.at(doc, format!("{field}.{name}"), "a name of letters, digits and '_' (at most 64)");
        }
        if value.len() > 512 {
            errors.at(doc, format!("{field}.{name}"), "at most 512 characters");
        } else if let Err(message) = check_variable_value(value) {
            errors.at(doc, format!("{field}.{name}"), message);
        }
    }
}

/// A character AWS allows in a stage variable value.
fn allowed_in_value(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(c)
}

/// AWS's rule for stage variable values: one or more of `A-Z a-z 0-9 - . _ ~ : / ? # & = ,`.
/// Nothing else may reach an upstream request line or header through a variable (a CR, LF or
/// space would split one request into two).
pub(super) fn check_variable_value(value: &str) -> Result<(), String> {
    const ALLOWED: &str = "letters, digits and - . _ ~ : / ? # & = ,";
    if value.is_empty() {
        return Err(format!("a stage variable value is one or more of {ALLOWED}"));
    }
    match value.chars().find(|&c| !allowed_in_value(c)) {
        None => Ok(()),
        Some(c) => Err(format!("{c:?} is not allowed in a stage variable value (only {ALLOWED})")),
    }
}

/// Replaces every `${stageVariables.name}`; a missing variable is an error rather than an
/// empty string, which AWS would only reveal at request time. Without a stage (`None`), each
/// becomes a placeholder (`1`), so the rest of the URI can still be checked.
pub(super) fn substitute_stage_variables(
    uri: &str,
    variables: Option<&BTreeMap<String, String>>,
) -> Result<String, String> {
    use std::fmt::Write;
    const OPEN: &str = "${stageVariables.";
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find('}').ok_or_else(|| "unclosed '${stageVariables.'".to_string())?;
        let name = &after[..end];
        let Some(variables) = variables else {
            // Valid as a host, a port and a path segment alike.
            out.push('1');
            rest = &after[end + 1..];
            continue;
        };
        let value =
            variables.get(name).ok_or_else(|| format!("stage variable '{name}' is not set on this stage"))?;
        // Values were checked when the stage was read; this is where one becomes part of a
        // request line, so anything outside AWS's set is percent-encoded here all the same.
        for c in value.chars() {
            if allowed_in_value(c) {
                out.push(c);
            } else {
                let mut utf8 = [0u8; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
