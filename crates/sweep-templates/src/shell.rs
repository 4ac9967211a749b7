//! Shell quoting for templates: the formatter of `*.sh.j2` templates and the filters that
//! produce text already safe for a shell.

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Error, ErrorKind, Output, State, Value};

/// Quotes `text` as one shell word: unchanged when it holds only characters no shell treats
/// specially, else in single quotes (a single quote inside becomes `'\''`). Inside single quotes
/// nothing is special — not `$`, backticks, `;`, `"` or a newline.
pub fn quote(text: &str) -> String {
    let plain =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Writes a value into a template: shell-quoted in `*.sh.j2` templates (unless it is safe text
/// from one of our filters), as is elsewhere.
pub fn formatter(out: &mut Output<'_>, state: &State<'_, '_>, value: &Value) -> Result<(), Error> {
    if state.auto_escape() == AutoEscape::Custom("sh") {
        if value.is_safe() {
            return out.write_str(value.as_str().unwrap_or_default()).map_err(Error::from);
        }
        if value.is_none() || value.is_undefined() {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "a missing value cannot be put into a shell command",
            ));
        }
        if matches!(value.kind(), ValueKind::Seq | ValueKind::Map) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a list or mapping cannot be put into a shell command as is; use the `argv` filter",
            ));
        }
        return out.write_str(&quote(&value.to_string())).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// `{{ words | argv }}`: each item quoted as one word, joined by spaces.
pub fn argv(value: &Value) -> Result<Value, Error> {
    let words = value.try_iter()?.map(|word| quote(&word.to_string())).collect::<Vec<_>>();
    Ok(Value::from_safe_string(words.join(" ")))
}

/// `{{ role.engine_args | flags("vllm") }}`: a role's `engine_args` as command-line options, each
/// after a space, by the engine's own rules. A key `max_model_len` is `--max-model-len`; a string
/// or number follows its flag as one word; a list or map follows it as JSON (vLLM's
/// `--speculative-config`, `--kv-transfer-config`). Booleans take no value, as argparse's
/// `store_true` and `BooleanOptionalAction` options want: `true` is the bare flag, and `false`
/// is `--no-<flag>` for engines whose options have that form (`negatable`: vLLM, Dynamo) and
/// nothing for the others (`plain`: SGLang, the simulated engine). `null` is refused: it says
/// neither.
pub fn flags(value: &Value, style: &str) -> Result<Value, Error> {
    let negatable = match style {
        "negatable" => true,
        "plain" => false,
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("flags: the style is `negatable` or `plain`, not `{other}`"),
            ))
        }
    };
    let mut out = String::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        let flag = key.to_string().replace('_', "-");
        // The key is the user's text too: quoted like any value.
        let option = quote(&format!("--{flag}"));
        match item.kind() {
            ValueKind::Bool if item.is_true() => out.push_str(&format!(" {option}")),
            ValueKind::Bool if negatable => out.push_str(&format!(" {}", quote(&format!("--no-{flag}")))),
            ValueKind::Bool => {}
            ValueKind::None | ValueKind::Undefined => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("engine_args `{key}` is null: give it a value, or `true` for a bare `--{flag}`"),
                ))
            }
            ValueKind::Seq | ValueKind::Map => {
                let json = serde_json::to_string(&item).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("engine_args `{key}`: cannot write JSON: {e}"),
                    )
                })?;
                out.push_str(&format!(" {option} {}", quote(&json)));
            }
            _ => out.push_str(&format!(" {option} {}", quote(&item.to_string()))),
        }
    }
    Ok(Value::from_safe_string(out))
}

/// `#SBATCH --x={{ v | directive }}`: a value sbatch reads from a comment line. Quoted like a
/// shell word (sbatch honours the quotes); a line break would end the comment and turn the rest
/// into a command, so it is refused.
pub fn directive(value: &Value) -> Result<Value, Error> {
    let text = value.to_string();
    if text.contains(['\n', '\r']) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("an #SBATCH value cannot contain a line break: {text:?}"),
        ));
    }
    Ok(Value::from_safe_string(quote(&text)))
}

/// `{{ server.nodes | nodelist }}`: the job's node names at those indices, as the script's
/// `NODES` array holds them, e.g. `"${NODES[0]},${NODES[1]}"`.
pub fn nodelist(value: &Value) -> Result<Value, Error> {
    let mut names = Vec::new();
    for index in value.try_iter()? {
        let index = u32::try_from(index.clone()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("a node index must be a whole number, not {index}"),
            )
        })?;
        names.push(format!("${{NODES[{index}]}}"));
    }
    Ok(Value::from_safe_string(format!("\"{}\"", names.join(","))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/models/DeepSeek-R1"), "/models/DeepSeek-R1");
        assert_eq!(quote("--tp=4"), "--tp=4");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
