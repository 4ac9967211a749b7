//! Which engine programs a rendered launch command runs, with the options it gives each, and how
//! to ask each program for the options it knows — the pure half of `sweep check`, which runs
//! the engines' own `--help` and compares. No I/O here.
//!
//! A command is shell text; it is split into words as a POSIX shell would (quotes, backslashes),
//! and a word that is itself a script (`bash -c '…'`) is split again. An engine is recognised by
//! its program words (`vllm serve`, `python3 -m dynamo.mocker`, …); its options are the
//! `--long` words that follow, up to the next shell separator or the next engine.

use std::collections::BTreeSet;

/// An engine program this module knows how to check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Program {
    /// How it is named to users, e.g. `vllm serve`, `python3 -m dynamo.mocker`.
    pub name: String,
    /// The command that prints every option it takes.
    pub help: Vec<String>,
}

/// One engine a launch command starts, and the options it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: Program,
    /// `--long` options as written (`--flag=value` as `--flag`), in order.
    pub options: Vec<String>,
    /// Each option's value: after `=`, or the next word when that is not an option; `None` for
    /// a bare flag.
    pub values: Vec<Option<String>>,
}

/// The programs recognised: the words that start them, and their help command.
fn recognise(words: &[String], at: usize) -> Option<(Program, usize)> {
    let word = |i: usize| words.get(at + i).map(String::as_str);
    let program = |name: String, help: Vec<&str>, len: usize| {
        Some((Program { name, help: help.into_iter().map(str::to_owned).collect() }, len))
    };
    match (word(0)?, word(1), word(2)) {
        ("vllm", Some("serve"), _) => program("vllm serve".into(), vec!["vllm", "serve", "--help=all"], 2),
        ("vllm-router", _, _) => program("vllm-router".into(), vec!["vllm-router", "--help"], 1),
        ("trtllm-serve", Some("disaggregated"), _) => {
            program("trtllm-serve disaggregated".into(), vec!["trtllm-serve", "disaggregated", "--help"], 2)
        }
        ("trtllm-serve", _, _) => {
            program("trtllm-serve serve".into(), vec!["trtllm-serve", "serve", "--help"], 1)
        }
        (python, Some("-m"), Some(module))
            if python.starts_with("python")
                && (module.starts_with("dynamo.")
                    || module.starts_with("sglang")
                    || module.starts_with("sglang_router")) =>
        {
            program(format!("{python} -m {module}"), vec![python, "-m", module, "--help"], 3)
        }
        (path, _, _) if path.rsplit('/').next() == Some("sweep-mock-engine") => {
            program("sweep-mock-engine".into(), vec![path, "--help"], 1)
        }
        _ => None,
    }
}

const SEPARATORS: &[&str] = &["&", "&&", ";", "|", "||"];

/// Every engine `command` starts, with its options.
pub fn invocations(command: &str) -> Vec<Invocation> {
    let mut words = Vec::new();
    flatten(command, &mut words, 0);
    let mut out: Vec<Invocation> = Vec::new();
    let mut current: Option<Invocation> = None;
    let mut i = 0;
    while i < words.len() {
        if let Some((program, len)) = recognise(&words, i) {
            out.extend(current.take());
            current = Some(Invocation { program, options: Vec::new(), values: Vec::new() });
            i += len;
            continue;
        }
        let word = &words[i];
        if SEPARATORS.contains(&word.as_str()) {
            out.extend(current.take());
        } else if let Some(invocation) = current.as_mut() {
            if word.starts_with("--") && word.len() > 2 {
                let (option, value) = match word.split_once('=') {
                    Some((option, value)) => (option, Some(value.to_owned())),
                    None => {
                        let next = words
                            .get(i + 1)
                            .filter(|w| !w.starts_with("--") && !SEPARATORS.contains(&w.as_str()));
                        (word.as_str(), next.cloned())
                    }
                };
                invocation.options.push(option.to_owned());
                invocation.values.push(value);
            }
        }
        i += 1;
    }
    out.extend(current);
    out
}

/// Splits `text` into words, and each word that holds a script into its words too.
fn flatten(text: &str, out: &mut Vec<String>, depth: u32) {
    for word in split(text) {
        if depth < 3 && word.contains(char::is_whitespace) {
            flatten(&word, out, depth + 1);
        } else {
            out.push(word);
        }
    }
}

/// POSIX shell word splitting: single quotes keep everything, double quotes keep all but
/// `\"`/`\\`, a backslash outside quotes escapes the next character; `;`, `&`, `|` end a word and
/// are words of their own.
pub fn split(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            word.extend(chars.next());
                        }
                        q => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next().filter(|&n| n != '\n'));
            }
            ';' | '&' | '|' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let mut op = c.to_string();
                if chars.peek() == Some(&c) && c != ';' {
                    op.extend(chars.next());
                }
                words.push(op);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The `--long` options a program's help text names (`--flag`, `--flag=VALUE`, `[--no-flag]`,
/// `--a, --b`).
pub fn known_options(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = help.as_bytes();
    let mut i = 0;
    while let Some(at) = help[i..].find("--").map(|p| p + i) {
        let before_ok = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'-');
        let end = help[at + 2..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .map_or(help.len(), |p| p + at + 2);
        let name = help[at..end].trim_end_matches(['.', '-']);
        if before_ok && name.len() > 2 && name.as_bytes()[2].is_ascii_alphanumeric() {
            out.insert(name.to_owned());
        }
        i = end.max(at + 2);
    }
    out
}

/// The values each option of a program's help is limited to: argparse's `--flag {a,b,c}`, and
/// clap's `[possible values: a, b, c]` under the option's line.
pub fn choices(help: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut last: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        // An option's own line: `--flag …`, or `-f, --flag …`.
        let own = match trimmed.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => rest.split_once(", ").map_or("", |(_, long)| long),
            _ => trimmed,
        };
        if own.starts_with("--") {
            let name: String =
                own.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect();
            if name.len() > 2 {
                let after = own[name.len()..].trim_start_matches('=').trim_start();
                if let Some((list, _)) = after.strip_prefix('{').and_then(|rest| rest.split_once('}')) {
                    out.insert(name.clone(), items(list));
                }
                last = Some(name);
            }
        }
        if let (Some(option), Some(list)) =
            (&last, line.split_once("[possible values: ").map(|(_, rest)| rest))
        {
            out.insert(option.clone(), items(list.split(']').next().unwrap_or_default()));
        }
    }
    out
}

/// `a, b,c` as its items.
fn items(list: &str) -> Vec<String> {
    list.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
}

/// A value an option's choices do not include.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub option: String,
    pub value: String,
    pub choices: Vec<String>,
}

/// The values `invocation` gives options whose choices do not include them, once each.
pub fn refused_values(
    invocation: &Invocation,
    choices: &std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<Refused> {
    let mut out: Vec<Refused> = Vec::new();
    for (option, value) in invocation.options.iter().zip(&invocation.values) {
        let (Some(value), Some(allowed)) = (value, choices.get(option)) else { continue };
        // Filled in when the step runs (a wrapper script's `"$3"`, the runner's `@SWEEP_PORT@`).
        if value.contains('$') || value.contains('@') {
            continue;
        }
        let refused = Refused { option: option.clone(), value: value.clone(), choices: allowed.clone() };
        if !allowed.contains(value) && !out.contains(&refused) {
            out.push(refused);
        }
    }
    out
}

/// An option a program does not take, with the closest one it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub option: String,
    pub closest: Option<String>,
}

/// The options of `invocation` that `known` lacks, once each.
pub fn unknown_options(invocation: &Invocation, known: &BTreeSet<String>) -> Vec<Unknown> {
    let mut seen = BTreeSet::new();
    invocation
        .options
        .iter()
        .filter(|o| !known.contains(*o) && seen.insert(o.as_str()))
        .map(|option| Unknown {
            option: option.clone(),
            closest: sweep_spec::closest(option, known.iter().map(String::as_str)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_as_a_shell_would() {
        assert_eq!(split(r#"a 'b c' "d \"e\"" f\ g"#), ["a", "b c", "d \"e\"", "f g"]);
        assert_eq!(split("x & y;z"), ["x", "&", "y", ";", "z"]);
        assert_eq!(split("a && b || c"), ["a", "&&", "b", "||", "c"]);
        assert_eq!(split("--kv '{\"a\":1}'"), ["--kv", "{\"a\":1}"]);
    }

    #[test]
    fn engines_and_their_options_are_found_inside_wrappers() {
        let command = "bash -c 'etcd --data-dir \"$1/etcd\" & exec python3 -m dynamo.frontend --http-port \"$2\" --discovery-backend etcd' fe /j 8333";
        let found = invocations(command);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].program.name, "python3 -m dynamo.frontend");
        assert_eq!(found[0].program.help, ["python3", "-m", "dynamo.frontend", "--help"]);
        assert_eq!(found[0].options, ["--http-port", "--discovery-backend"]);

        let vllm =
            invocations("vllm serve /m --port 8000 --enforce-eager --kv-transfer-config '{\"a\":1}' --x=1");
        assert_eq!(vllm[0].program.help, ["vllm", "serve", "--help=all"]);
        assert_eq!(vllm[0].options, ["--port", "--enforce-eager", "--kv-transfer-config", "--x"]);
        let values: Vec<Option<&str>> = vllm[0].values.iter().map(Option::as_deref).collect();
        assert_eq!(values, [Some("8000"), None, Some("{\"a\":1}"), Some("1")]);

        let runner = "/bin/sweep-runner with-workers --job-dir /j --format router -- vllm-router --host 0.0.0.0 --port 1";
        let router = invocations(runner);
        assert_eq!(router.len(), 1);
        assert_eq!((router[0].program.name.as_str(), router[0].options.len()), ("vllm-router", 2));
        assert!(invocations("my-server --port 1").is_empty(), "an unknown program is not checked");
    }

    #[test]
    fn help_texts_name_their_options() {
        let help = "usage: x [-h] [--enforce-eager | --no-enforce-eager]\n  --max-model-len MAX_MODEL_LEN, -m\n  --help=all shows\n  --kv_cache_dtype {auto}\nsee https://x--y.org and --- rules; 'wait--no'\n";
        let known = known_options(help);
        let want = ["--enforce-eager", "--help", "--kv_cache_dtype", "--max-model-len", "--no-enforce-eager"];
        assert_eq!(known.iter().map(String::as_str).collect::<Vec<_>>(), want);
        let invocation = Invocation {
            program: Program { name: "x".into(), help: vec![] },
            options: vec!["--enforce-eagr".into(), "--max-model-len".into(), "--enforce-eagr".into()],
            values: vec![None, Some("1".into()), None],
        };
        assert_eq!(
            unknown_options(&invocation, &known),
            [Unknown { option: "--enforce-eagr".into(), closest: Some("--enforce-eager".into()) }]
        );
    }

    #[test]
    fn choices_are_read_from_argparse_and_clap_help_and_values_outside_them_refused() {
        let help = "options:\n  --router-mode {kv,round-robin,random}\n                        How to route\n  --kv-cache-dtype {auto,fp8}\n  -p, --policy <POLICY>\n          Routing policy\n          \n          [default: cache_aware]\n          [possible values: random, round_robin, cache_aware]\n  --port PORT\n";
        let found = choices(help);
        assert_eq!(found["--router-mode"], ["kv", "round-robin", "random"]);
        assert_eq!(found["--kv-cache-dtype"], ["auto", "fp8"]);
        assert_eq!(found["--policy"], ["random", "round_robin", "cache_aware"]);
        assert!(!found.contains_key("--port"));
        let invocation = &invocations(
            "python3 -m dynamo.frontend --router-mode fastest --kv-cache-dtype=fp8 --policy \"$3\" --port 1",
        )[0];
        assert_eq!(
            refused_values(invocation, &found),
            [Refused {
                option: "--router-mode".into(),
                value: "fastest".into(),
                choices: found["--router-mode"].clone()
            }]
        );
    }
}
