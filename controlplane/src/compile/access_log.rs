//! Compiles a stage's `accessLog` (AWS accessLogSettings): the destination file and the line
//! format, a template of `$context` variables or one of the presets `CLF` and `JSON`.

use proto::table::{AccessLog, LogPart, LogVar};

/// AWS's Common Log Format preset.
pub const CLF: &str = "$context.identity.sourceIp - - [$context.requestTime] \
    \"$context.httpMethod $context.path $context.protocol\" $context.status $context.responseLength $context.requestId";

/// A JSON preset with the fields an operator reads most.
pub const JSON: &str = "{\"requestId\":\"$context.requestId\",\"ip\":\"$context.identity.sourceIp\",\
    \"requestTime\":\"$context.requestTime\",\"httpMethod\":\"$context.httpMethod\",\"routeKey\":\"$context.routeKey\",\
    \"path\":\"$context.path\",\"status\":\"$context.status\",\"protocol\":\"$context.protocol\",\
    \"responseLength\":\"$context.responseLength\",\"responseLatency\":\"$context.responseLatency\",\
    \"integrationLatency\":\"$context.integrationLatency\",\"xrayTraceId\":\"$context.xrayTraceId\"}";

const PREFIX: &str = "$context.";

/// The compiled access log, or why it is refused: `(field, message)`.
pub fn compile(settings: &crate::manifest::AccessLogSettings) -> Result<AccessLog, (String, String)> {
    let destination = settings.destination.trim();
    if !proto::table::is_log_file_name(destination) {
        return Err((
            "destination".into(),
            format!(
                "'{destination}' is not a file name: a destination names a file in each data plane's \
                 --access-log-dir (letters, digits, '-', '_' and '.', not starting with '.')"
            ),
        ));
    }
    let template = match settings.format.as_deref().unwrap_or("CLF") {
        "CLF" => CLF,
        "JSON" => JSON,
        custom => custom,
    };
    let format = parse(template).map_err(|e| ("format".to_string(), e))?;
    Ok(AccessLog { destination: destination.to_string(), format })
}

/// Splits a template into literal text and variables. A `$context.` not followed by a known
/// name is an error, with the nearest name as a hint.
pub fn parse(template: &str) -> Result<Vec<LogPart>, String> {
    if template.contains(['\n', '\r']) {
        return Err("a format is one line (no line breaks)".into());
    }
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find(PREFIX) {
        if at > 0 {
            parts.push(LogPart::Literal(rest[..at].to_string()));
        }
        let after = &rest[at + PREFIX.len()..];
        let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(after.len());
        let name = after[..len].trim_end_matches('.');
        let Some((_, var)) = LogVar::NAMES.iter().find(|(n, _)| *n == name) else {
            let hint = match crate::manifest::nearest(name, LogVar::NAMES.iter().map(|(n, _)| *n)) {
                Some(best) => format!("; did you mean '$context.{best}'?"),
                None => String::new(),
            };
            return Err(format!("unknown variable '$context.{name}'{hint}"));
        };
        parts.push(LogPart::Var(*var));
        rest = &after[name.len()..];
    }
    if !rest.is_empty() {
        parts.push(LogPart::Literal(rest.to_string()));
    }
    if !parts.iter().any(|p| matches!(p, LogPart::Var(_))) {
        return Err("a format needs at least one $context variable (AWS requires $context.requestId)".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_literals_and_variables() {
        let parts = parse("$context.requestId [$context.identity.sourceIp] $context.status.").unwrap();
        assert_eq!(
            parts,
            vec![
                LogPart::Var(LogVar::RequestId),
                LogPart::Literal(" [".into()),
                LogPart::Var(LogVar::SourceIp),
                LogPart::Literal("] ".into()),
                LogPart::Var(LogVar::Status),
                LogPart::Literal(".".into()),
            ]
        );
        assert!(parse(CLF).is_ok() && parse(JSON).is_ok());
        assert_eq!(
            parse("$context.requestid").unwrap_err(),
            "unknown variable '$context.requestid'; did you mean '$context.requestId'?"
        );
        assert!(parse("no variables").is_err());
        assert!(parse("$context.requestId\n").is_err());
    }
}
