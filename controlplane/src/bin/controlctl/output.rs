//! How results are printed: tables, JSON or YAML, changes and errors.

use super::Output;
use proto::grpc;

pub(crate) fn print_changes(changes: &[grpc::Change], suffix: &str) {
    for c in changes {
        let name = if c.name.is_empty() { String::new() } else { format!("/{}", c.name) };
        println!("{}{name} {}{suffix}", c.kind.to_ascii_lowercase(), c.action);
    }
}

pub(crate) fn format_errors(errors: &[grpc::FieldError]) -> String {
    let mut out = String::new();
    for e in errors {
        let line = if e.line > 0 { format!(":{}", e.line) } else { String::new() };
        let path = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path) };
        out.push_str(&format!("error: {}{line}: {path}{}\n", e.file, e.message));
    }
    out.push_str(&format!("{} error(s); nothing applied", errors.len()));
    out
}

pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub(crate) fn print_structured(value: &serde_json::Value, output: Output) {
    match output {
        Output::Yaml => print!("{}", yaml_serde::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

pub(crate) fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}
