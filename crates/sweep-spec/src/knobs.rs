//! Knobs: settings of the deployment that are passed through to the engine (engine arguments,
//! environment variables, frontend options, the image or environment it runs from) and that
//! can vary like the planner's own axes.
//!
//! A value is fixed unless it says otherwise, so that an option whose own value is a list stays
//! a list (`cuda_graph_batch_sizes: [1, 2, 4]`):
//! - `{sweep: [a, b]}` is an axis of the values `a` and `b` (each may itself be a list or a map,
//!   or `{expr: "..."}`);
//! - `{expr: "batch * 8"}` is one value computed per point from the other axes.
//!
//! Anything else is a fixed value, passed as written. A map holding `sweep` or `expr` beside
//! other keys is refused: it would read as neither.

use std::collections::BTreeMap;

use crate::error::SpecError;
use crate::model::{KnobTarget, Role};
use crate::source::KeyPath;

/// One value of an axis as the file gives it, before names are resolved: the planner's own
/// axes' integers, words and expressions, and a knob's literal (`docs/spec.md`, "Knobs").
/// Here, below `resolve`, so that both build them.
pub(crate) enum Written {
    Int(i64),
    Str(&'static str),
    Expr(String),
    Json(serde_json::Value),
}

/// A knob that is an axis, before its values are compiled.
pub(crate) struct PendingKnob {
    pub target: KnobTarget,
    /// The axis's name: `gen.engine_args.max_num_seqs`.
    pub name: String,
    /// What job names show: `max_num_seqs`.
    pub short: String,
    pub path: KeyPath,
    pub values: Vec<Written>,
    pub value_paths: Vec<KeyPath>,
}

/// The two markers that make a value an axis.
const SWEEP: &str = "sweep";
const EXPR: &str = "expr";

/// `Some(values)` when `value` is an axis (`{sweep: [...]}` or `{expr: ...}`), with each value's
/// place in the file.
fn axis_values(
    value: &serde_json::Value,
    path: &KeyPath,
) -> Result<Option<Vec<(Written, KeyPath)>>, SpecError> {
    let Some(map) = value.as_object() else { return Ok(None) };
    if !map.contains_key(SWEEP) && !map.contains_key(EXPR) {
        return Ok(None);
    }
    if map.len() != 1 {
        let marker = if map.contains_key(SWEEP) { SWEEP } else { EXPR };
        return Err(SpecError::invalid(
            path.clone(),
            format!("`{marker}` beside other keys is ambiguous: this is neither a value nor an axis"),
        )
        .with_help(format!(
            "write an axis as `{{sweep: [value, value]}}` and a derived value as `{{expr: \"batch * 8\"}}`, \
             each alone in its map; an option whose value is a map with a `{marker}` key cannot be given"
        )));
    }
    if let Some(expr) = map.get(EXPR) {
        return Ok(Some(vec![(expression(expr, &path.key(EXPR))?, path.key(EXPR))]));
    }
    let list_path = path.key(SWEEP);
    let Some(list) = map.get(SWEEP).and_then(|v| v.as_array()) else {
        return Err(SpecError::invalid(list_path, "`sweep` takes a list of the values to sweep")
            .with_help("write `{sweep: [64, 128]}`; a single value needs no `sweep`"));
    };
    if list.is_empty() {
        return Err(SpecError::invalid(list_path, "the list of values is empty")
            .with_help("give at least one value, or write the value without `sweep`"));
    }
    let mut values = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let at = list_path.index(i);
        let written = match item.as_object().filter(|m| m.contains_key(EXPR)) {
            Some(m) if m.len() == 1 => expression(&m[EXPR], &at.key(EXPR))?,
            _ => Written::Json(item.clone()),
        };
        values.push((written, at));
    }
    Ok(Some(values))
}

fn expression(value: &serde_json::Value, path: &KeyPath) -> Result<Written, SpecError> {
    match value.as_str() {
        Some(source) if !source.trim().is_empty() => Ok(Written::Expr(source.to_owned())),
        _ => Err(SpecError::invalid(path.clone(), "`expr` takes an expression, as text")
            .with_help("e.g. `{expr: \"batch * 8\"}`")),
    }
}

fn pending(
    target: KnobTarget,
    name: String,
    short: String,
    path: KeyPath,
    values: Vec<(Written, KeyPath)>,
) -> PendingKnob {
    let (values, value_paths) = values.into_iter().unzip();
    PendingKnob { target, name, short, path, values, value_paths }
}

/// A role's `engine_args`: the fixed arguments, and the knobs, found at any depth of nested maps
/// (TensorRT-LLM's `kv_cache_config.free_gpu_memory_fraction`).
pub(crate) fn engine_args(
    role: Role,
    args: &BTreeMap<String, serde_json::Value>,
) -> Result<(BTreeMap<String, serde_json::Value>, Vec<PendingKnob>), SpecError> {
    let base = KeyPath::keys(role.as_str()).key("engine_args");
    let mut knobs = Vec::new();
    let mut fixed = BTreeMap::new();
    for (key, value) in args {
        if let Some(kept) = split(role, std::slice::from_ref(key), value, &base.key(key.clone()), &mut knobs)?
        {
            fixed.insert(key.clone(), kept);
        }
    }
    Ok((fixed, knobs))
}

/// The fixed part of `value` (`None` when all of it is an axis); its axes go to `knobs`.
fn split(
    role: Role,
    keys: &[String],
    value: &serde_json::Value,
    path: &KeyPath,
    knobs: &mut Vec<PendingKnob>,
) -> Result<Option<serde_json::Value>, SpecError> {
    if let Some(values) = axis_values(value, path)? {
        let target = KnobTarget::EngineArg { role, path: keys.to_vec() };
        let name = format!("{role}.engine_args.{}", keys.join("."));
        let short = keys.last().cloned().unwrap_or_default();
        knobs.push(pending(target, name, short, path.clone(), values));
        return Ok(None);
    }
    let Some(map) = value.as_object() else { return Ok(Some(value.clone())) };
    let mut fixed = serde_json::Map::new();
    for (key, inner) in map {
        let mut nested = keys.to_vec();
        nested.push(key.clone());
        if let Some(kept) = split(role, &nested, inner, &path.key(key.clone()), knobs)? {
            fixed.insert(key.clone(), kept);
        }
    }
    // A map whose every entry is an axis still exists (empty) for the axes to fill.
    Ok(Some(serde_json::Value::Object(fixed)))
}

/// Whether `name` can be an environment variable set by a shell.
pub(crate) fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An environment variable's value as text: a string, number or boolean as written.
fn env_text(value: &serde_json::Value, path: &KeyPath) -> Result<String, SpecError> {
    match value {
        serde_json::Value::String(text) => Ok(text.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(SpecError::invalid(
            path.clone(),
            "an environment variable's value is text, a number or a boolean",
        )
        .with_help("quote the value; lists and maps have no single form in the environment")),
    }
}

/// `<role>.env` (`role` given) or `engine.env`: the fixed variables and the knobs.
pub(crate) fn env(
    role: Option<Role>,
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<(BTreeMap<String, String>, Vec<PendingKnob>), SpecError> {
    let base = match role {
        Some(role) => KeyPath::keys(role.as_str()).key("env"),
        None => KeyPath::keys("engine.env"),
    };
    let mut fixed = BTreeMap::new();
    let mut knobs = Vec::new();
    for (name, value) in vars {
        let path = base.key(name.clone());
        if !is_shell_name(name) {
            return Err(SpecError::invalid(
                path,
                format!("`{name}` is not a valid environment variable name"),
            )
            .with_help(
                "use letters, digits and `_`, not starting with a digit (a shell refuses anything else)",
            ));
        }
        match axis_values(value, &path)? {
            Some(values) => {
                let mut checked = Vec::with_capacity(values.len());
                for (written, at) in values {
                    let written = match written {
                        Written::Json(v) => Written::Json(serde_json::Value::String(env_text(&v, &at)?)),
                        other => other,
                    };
                    checked.push((written, at));
                }
                let target = KnobTarget::Env { role, name: name.clone() };
                let full = format!("{}.{name}", base);
                knobs.push(pending(target, full, name.clone(), path, checked));
            }
            None => {
                fixed.insert(name.clone(), env_text(value, &path)?);
            }
        }
    }
    Ok((fixed, knobs))
}

/// `engine.frontend_args`: options of the frontend or router, fixed or knobs.
pub(crate) fn frontend_args(
    args: &BTreeMap<String, serde_json::Value>,
) -> Result<(BTreeMap<String, serde_json::Value>, Vec<PendingKnob>), SpecError> {
    let base = KeyPath::keys("engine.frontend_args");
    let mut fixed = BTreeMap::new();
    let mut knobs = Vec::new();
    for (name, value) in args {
        let path = base.key(name.clone());
        match axis_values(value, &path)? {
            Some(values) => {
                let target = KnobTarget::FrontendArg { name: name.clone() };
                knobs.push(pending(
                    target,
                    format!("engine.frontend_args.{name}"),
                    name.clone(),
                    path,
                    values,
                ));
            }
            None => {
                fixed.insert(name.clone(), value.clone());
            }
        }
    }
    Ok((fixed, knobs))
}

/// `cluster.container.image` or `engine.venv`: one path, or several (a plain list, or
/// `{sweep: [...]}`) as an axis. Text only: no expression names an image.
pub(crate) fn one_or_axis(
    value: &serde_json::Value,
    path: &KeyPath,
    target: KnobTarget,
    short: &str,
) -> Result<(Option<String>, Option<PendingKnob>), SpecError> {
    let text = |v: &serde_json::Value, at: &KeyPath| match v.as_str() {
        Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
        _ => Err(SpecError::invalid(at.clone(), "this is a path or image name, as non-empty text")),
    };
    let listed: Option<Vec<(Written, KeyPath)>> = match value {
        serde_json::Value::Array(list) => {
            Some(list.iter().enumerate().map(|(i, v)| (Written::Json(v.clone()), path.index(i))).collect())
        }
        other => axis_values(other, path)?,
    };
    let Some(values) = listed else { return Ok((Some(text(value, path)?), None)) };
    if values.is_empty() {
        return Err(SpecError::invalid(path.clone(), "the list of values is empty"));
    }
    for (written, at) in &values {
        match written {
            Written::Json(v) => {
                text(v, at)?;
            }
            _ => {
                return Err(SpecError::invalid(
                    at.clone(),
                    format!("`{short}` takes text, not an expression"),
                ))
            }
        }
    }
    if values.len() == 1 {
        let Written::Json(v) = &values[0].0 else { unreachable!("checked above") };
        return Ok((v.as_str().map(str::to_owned), None));
    }
    Ok((None, Some(pending(target, path.to_string(), short.to_owned(), path.clone(), values))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("json")
    }

    #[test]
    fn a_list_is_a_value_and_sweep_makes_an_axis_at_any_depth() {
        let args: BTreeMap<String, serde_json::Value> = serde_json::from_value(json(
            r#"{"cuda_graph_batch_sizes": [1, 2, 4], "max_num_seqs": {"sweep": [64, 128]},
                "kv_cache_config": {"free_gpu_memory_fraction": {"sweep": [0.8, 0.9]}, "enable_block_reuse": true},
                "max_num_batched_tokens": {"expr": "batch * 8"}}"#,
        ))
        .expect("a map");
        let (fixed, knobs) = engine_args(Role::Gen, &args).expect("valid");
        assert_eq!(
            serde_json::to_value(&fixed).expect("json"),
            json(r#"{"cuda_graph_batch_sizes": [1, 2, 4], "kv_cache_config": {"enable_block_reuse": true}}"#)
        );
        let names: Vec<&str> = knobs.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gen.engine_args.kv_cache_config.free_gpu_memory_fraction",
                "gen.engine_args.max_num_batched_tokens",
                "gen.engine_args.max_num_seqs"
            ]
        );
        assert_eq!(knobs[0].short, "free_gpu_memory_fraction");
        assert_eq!(
            knobs[0].value_paths[1].to_string(),
            "gen.engine_args.kv_cache_config.free_gpu_memory_fraction.sweep[1]"
        );
        assert!(matches!(&knobs[1].values[..], [Written::Expr(e)] if e == "batch * 8"));
    }

    #[test]
    fn a_marker_beside_other_keys_is_ambiguous() {
        let args: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json(r#"{"speculative_config": {"sweep": [1, 2], "method": "mtp"}}"#))
                .expect("a map");
        let error = engine_args(Role::Gen, &args).err().expect("refused");
        assert!(error.to_string().contains("ambiguous"), "{error}");
        assert_eq!(error.path.to_string(), "gen.engine_args.speculative_config");
    }

    #[test]
    fn environment_names_are_shell_names_and_values_are_text() {
        let vars: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json(r#"{"NCCL_MIN_NCHANNELS": 4, "VLLM_X": {"sweep": ["1", 2]}}"#))
                .expect("map");
        let (fixed, knobs) = env(None, &vars).expect("valid");
        assert_eq!(fixed["NCCL_MIN_NCHANNELS"], "4");
        assert_eq!(knobs[0].name, "engine.env.VLLM_X");
        assert!(matches!(&knobs[0].values[1], Written::Json(serde_json::Value::String(s)) if s == "2"));
        let bad: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(json(r#"{"1BAD-NAME": "x"}"#)).expect("map");
        let error = env(Some(Role::Agg), &bad).err().expect("refused");
        assert_eq!(error.path.to_string(), "agg.env.1BAD-NAME");
        assert!(is_shell_name("_A1") && !is_shell_name("A-B") && !is_shell_name(""));
    }

    #[test]
    fn an_image_list_is_an_axis_and_one_image_is_fixed() {
        let path = KeyPath::keys("cluster.container.image");
        let (fixed, knob) =
            one_or_axis(&json(r#""img:1""#), &path, KnobTarget::Image, "image").expect("valid");
        assert_eq!((fixed.as_deref(), knob.is_none()), (Some("img:1"), true));
        let (fixed, knob) =
            one_or_axis(&json(r#"["a:1", "b:2"]"#), &path, KnobTarget::Image, "image").expect("valid");
        assert!(fixed.is_none());
        assert_eq!(knob.expect("an axis").name, "cluster.container.image");
        assert!(one_or_axis(&json("[]"), &path, KnobTarget::Image, "image").is_err());
    }
}
