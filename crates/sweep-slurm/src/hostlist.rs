//! SLURM host lists: `n[01-04,07],gpu[1-2]` ⇄ `n01 n02 n03 n04 n07 gpu1 gpu2`.
//!
//! As SLURM reads them: hosts are separated by commas outside brackets; a bracket holds a
//! comma-separated list of numbers and ranges `a-b`; a range keeps the zero-padding of its lower
//! bound (`[08-10]` gives 08 09 10); several brackets in one host multiply (`r[1-2]n[1-2]`
//! gives r1n1 r1n2 r2n1 r2n2); order is kept as written.

/// A host list that does not parse, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host list `{list}` at character {offset}: {reason}")]
pub struct HostlistError {
    pub list: String,
    pub offset: usize,
    pub reason: &'static str,
}

/// The most hosts one list may expand to, against typos such as `n[1-100000000]`.
pub const MAX_HOSTS: usize = 1 << 20;

/// Expands a host list into host names, in order.
pub fn expand(list: &str) -> Result<Vec<String>, HostlistError> {
    let error = |offset, reason| HostlistError { list: list.to_owned(), offset, reason };
    let mut hosts = Vec::new();
    let bytes = list.as_bytes();
    let mut start = 0;
    let mut depth = 0;
    for (i, &b) in bytes.iter().enumerate().chain(std::iter::once((bytes.len(), &b','))) {
        match b {
            b'[' if depth == 0 => depth = 1,
            b'[' => return Err(error(i, "nested `[`")),
            b']' if depth == 1 => depth = 0,
            b']' => return Err(error(i, "`]` without `[`")),
            b',' if depth == 0 => {
                let item = &list[start..i];
                if !item.trim().is_empty() {
                    expand_host(item.trim(), start, &mut hosts, &error)?;
                }
                start = i + 1;
            }
            _ => {}
        }
        if hosts.len() > MAX_HOSTS {
            return Err(error(i, "expands to too many hosts"));
        }
    }
    if depth != 0 {
        return Err(error(list.len(), "`[` without `]`"));
    }
    Ok(hosts)
}

type ErrorAt<'a> = dyn Fn(usize, &'static str) -> HostlistError + 'a;

/// Expands one host expression (no top-level commas) and appends its hosts.
fn expand_host(
    item: &str,
    offset: usize,
    out: &mut Vec<String>,
    error: &ErrorAt<'_>,
) -> Result<(), HostlistError> {
    let Some(open) = item.find('[') else {
        out.push(item.to_owned());
        return Ok(());
    };
    let close =
        item[open..].find(']').map(|c| open + c).ok_or_else(|| error(offset + open, "`[` without `]`"))?;
    let prefix = &item[..open];
    let rest = &item[close + 1..];
    if !rest.is_empty() && !rest.contains('[') {
        return Err(error(offset + close + 1, "text after the last `]`"));
    }
    let mut suffixes = Vec::new();
    expand_host_tail(rest, offset + close + 1, &mut suffixes, error)?;
    for number in numbers(&item[open + 1..close], offset + open + 1, error)? {
        for suffix in &suffixes {
            out.push(format!("{prefix}{number}{suffix}"));
            if out.len() > MAX_HOSTS {
                return Err(error(offset, "expands to too many hosts"));
            }
        }
    }
    Ok(())
}

fn expand_host_tail(
    rest: &str,
    offset: usize,
    out: &mut Vec<String>,
    error: &ErrorAt<'_>,
) -> Result<(), HostlistError> {
    if rest.is_empty() {
        out.push(String::new());
        Ok(())
    } else {
        expand_host(rest, offset, out, error)
    }
}

/// The numbers of a bracket's body, each with its padding: `01-03,7` gives 01 02 03 7.
fn numbers(body: &str, offset: usize, error: &ErrorAt<'_>) -> Result<Vec<String>, HostlistError> {
    let mut out = Vec::new();
    let mut at = offset;
    for part in body.split(',') {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match part.split_once('-') {
            None if digits(part) => out.push(part.to_owned()),
            Some((low, high)) if digits(low) && digits(high) => {
                let (a, b) = (parse(low, at, error)?, parse(high, at, error)?);
                if b < a {
                    return Err(error(at, "a range runs backwards"));
                }
                if (b - a) as usize >= MAX_HOSTS {
                    return Err(error(at, "expands to too many hosts"));
                }
                let width = low.len();
                out.extend((a..=b).map(|n| format!("{n:0width$}")));
            }
            _ => return Err(error(at, "a bracket holds numbers and ranges such as 1-4")),
        }
        at += part.len() + 1;
    }
    Ok(out)
}

fn parse(digits: &str, at: usize, error: &ErrorAt<'_>) -> Result<u64, HostlistError> {
    digits.parse().map_err(|_| error(at, "number too large"))
}

/// Compresses host names into a host list: consecutive numbers of one prefix and width become a
/// range. The inverse of [`expand`] for names without brackets.
pub fn compress<S: AsRef<str>>(hosts: &[S]) -> String {
    // (prefix, width) → numbers in order; hosts without a trailing number stand alone.
    let mut groups: Vec<(String, usize, Vec<u64>)> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let flush = |groups: &mut Vec<(String, usize, Vec<u64>)>, out: &mut Vec<String>| {
        for (prefix, width, numbers) in groups.drain(..) {
            out.push(render_group(&prefix, width, &numbers));
        }
    };
    for host in hosts {
        let host = host.as_ref();
        let split = host.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, digits) = host.split_at(split);
        match digits.parse::<u64>() {
            Ok(number) if !digits.is_empty() => {
                let width = if digits.starts_with('0') && digits.len() > 1 { digits.len() } else { 0 };
                match groups.last_mut() {
                    Some((p, w, numbers)) if p == prefix && *w == width => numbers.push(number),
                    _ => {
                        flush(&mut groups, &mut out);
                        groups.push((prefix.to_owned(), width, vec![number]));
                    }
                }
            }
            _ => {
                flush(&mut groups, &mut out);
                out.push(host.to_owned());
            }
        }
    }
    flush(&mut groups, &mut out);
    out.join(",")
}

fn render_group(prefix: &str, width: usize, numbers: &[u64]) -> String {
    if numbers.len() == 1 {
        return format!("{prefix}{:0width$}", numbers[0]);
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            format!("{:0width$}", numbers[i])
        } else {
            format!("{:0width$}-{:0width$}", numbers[i], numbers[j])
        });
        i = j + 1;
    }
    format!("{prefix}[{}]", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &str) -> Vec<String> {
        expand(list).expect(list)
    }

    #[test]
    fn expands_ranges_lists_padding_and_products() {
        assert_eq!(hosts("n[01-04,07],gpu[1-2]"), ["n01", "n02", "n03", "n04", "n07", "gpu1", "gpu2"]);
        assert_eq!(hosts("n[8-10]"), ["n8", "n9", "n10"]);
        assert_eq!(hosts("n[08-10]"), ["n08", "n09", "n10"]);
        assert_eq!(hosts("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
        assert_eq!(hosts("login,n1"), ["login", "n1"]);
        assert_eq!(hosts("n[1,1]"), ["n1", "n1"]);
        assert_eq!(hosts("n[1-002]"), ["n1", "n2"]);
        assert_eq!(hosts(""), Vec::<String>::new());
    }

    #[test]
    fn rejects_what_slurm_rejects() {
        for bad in [
            "n[1-",
            "n1]",
            "n[[1]]",
            "n[a-b]",
            "n[3-1]",
            "n[]",
            "n[1-2-3]",
            "n[1-99999999999]",
            "a[1]-b",
            "n[1-2]a",
        ] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compresses_runs_and_keeps_order() {
        assert_eq!(
            compress(&["n1", "n2", "n3", "n5", "gpu01", "gpu02", "login"]),
            "n[1-3,5],gpu[01-02],login"
        );
        assert_eq!(compress(&["n7"]), "n7");
        let names = hosts("a[1-3,7],b[001-010],c");
        assert_eq!(hosts(&compress(&names)), names);
    }
}
