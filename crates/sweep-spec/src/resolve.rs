//! From the spec as written ([`RawSpec`]) to the validated model ([`Spec`]): defaults applied,
//! every value range-checked, every name resolved, every expression compiled and ordered.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Parent, SpecError, SpecErrorKind};
use crate::expr::{Binding, Expr, ExprError, Type, Value};
use crate::knobs::{self, PendingKnob, Written};
use crate::model::{
    slot_of, ArrivalKind, Axis, AxisKey, AxisName, AxisValue, Cluster, Container, Count, Dim, Discovery,
    DynamoBackend, DynamoPlanes, Engine, EngineKind, Exclude, Filter, Goodput, Health, Knob, KnobTarget,
    Load, Metrics, Mode, Model, Packing, Parallel, Rate, RequestPlane, Role, RoleSpec, Space, Spec, Subspace,
    TaskMode, Workload, MODE_SLOT,
};
use crate::raw::{Number, OneOrMany, RawRole, RawSpec, Scalar};
use crate::source::KeyPath;

pub(crate) fn resolve(raw: RawSpec) -> Result<Spec, SpecError> {
    if let Some(version) = raw.version {
        if version != 1 {
            return Err(SpecError::invalid(
                KeyPath::keys("version"),
                format!("spec version {version} is not supported"),
            )
            .with_help("this version of sweep reads spec version 1"));
        }
    }
    let name = resolve_name(&raw.name)?;
    let model = resolve_model(&raw)?;
    let mut knobs = Knobs::default();
    let engine = resolve_engine(&raw, &mut knobs)?;
    let cluster = resolve_cluster(&raw, &mut knobs)?;
    let modes = resolve_modes(&raw.mode)?;
    let roles = resolve_roles(&raw, &modes, &mut knobs)?;
    let workload = resolve_workload(&raw)?;
    let space = SpaceBuilder::new(&raw, &roles, knobs, &modes)?.finish(&raw)?;
    let executor = raw.executor.unwrap_or_default();
    let accuracy = raw.accuracy.as_ref().map(resolve_accuracy).transpose()?;
    Ok(Spec { name, executor, model, engine, cluster, workload, roles, space, accuracy })
}

fn resolve_name(name: &str) -> Result<String, SpecError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(SpecError::invalid(KeyPath::keys("name"), format!("`{name}` cannot name a sweep"))
            .with_help(
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit: the name \
             becomes part of SLURM job names and directory names",
            ));
    }
    Ok(name.to_owned())
}

fn resolve_model(raw: &RawSpec) -> Result<Model, SpecError> {
    let path = raw.model.path.trim();
    if path.is_empty() {
        return Err(SpecError::invalid(KeyPath::keys("model.path"), "the model path is empty"));
    }
    let served_name = match &raw.model.served_name {
        Some(name) if name.trim().is_empty() => {
            return Err(SpecError::invalid(KeyPath::keys("model.served_name"), "the served name is empty")
                .with_help("remove the key to use the last component of `model.path`"))
        }
        Some(name) => name.clone(),
        None => path.trim_end_matches('/').rsplit('/').next().unwrap_or(path).to_owned(),
    };
    let config = match &raw.model.config {
        Some(config) if config.trim().is_empty() => {
            return Err(SpecError::invalid(KeyPath::keys("model.config"), "the config path is empty")
                .with_help("remove the key to read `<model.path>/config.json` when it exists here"))
        }
        other => other.clone(),
    };
    Ok(Model { path: path.to_owned(), served_name, config, dtype: raw.model.dtype })
}

fn resolve_engine(raw: &RawSpec, knobs: &mut Knobs) -> Result<Engine, SpecError> {
    let kind = raw.engine.kind;
    for (key, given) in [
        ("backend", raw.engine.backend.is_some()),
        ("discovery", raw.engine.discovery.is_some()),
        ("request_plane", raw.engine.request_plane.is_some()),
    ] {
        if given && kind != EngineKind::Dynamo {
            return Err(SpecError::invalid(
                KeyPath::keys(&format!("engine.{key}")),
                format!("`{key}` applies only to `kind: dynamo`"),
            )
            .with_help(format!("remove `engine.{key}`, or set `engine.kind: dynamo`")));
        }
    }
    let dynamo = (kind == EngineKind::Dynamo).then(|| {
        let discovery = raw.engine.discovery.unwrap_or(Discovery::Etcd);
        let request_plane = raw.engine.request_plane.unwrap_or(match discovery {
            Discovery::Etcd => RequestPlane::Nats,
            Discovery::File => RequestPlane::Tcp,
        });
        DynamoPlanes { discovery, request_plane }
    });
    if let Some(DynamoPlanes { discovery: Discovery::File, request_plane: RequestPlane::Nats }) = dynamo {
        return Err(SpecError::invalid(
            KeyPath::keys("engine.request_plane"),
            "file discovery starts no NATS server, so requests cannot go over NATS",
        )
        .with_help("use `request_plane: tcp` (the default with `discovery: file`), or `discovery: etcd`"));
    }
    // MPI-launched engines want one task per GPU; the others spawn their own workers per node.
    let default_tasks = match (kind, raw.engine.backend) {
        (EngineKind::Trtllm, _) | (EngineKind::Dynamo, Some(DynamoBackend::Trtllm)) => TaskMode::PerGpu,
        _ => TaskMode::PerNode,
    };
    let commands = raw.engine.commands.clone().unwrap_or_default();
    let path = KeyPath::keys("engine.commands");
    match (kind, commands.is_empty()) {
        (EngineKind::Custom, true) => {
            return Err(SpecError::new(
                SpecErrorKind::MissingKey { key: "commands".into(), parent: Parent(KeyPath::keys("engine")) },
                KeyPath::keys("engine"),
            )
            .with_help("a custom engine needs each role's launch command, e.g. `commands: {agg: \"my-server --port {{ server.port }}\"}`"))
        }
        (EngineKind::Custom, false) => {
            for (role, command) in &commands {
                if !["agg", "ctx", "gen", "frontend"].contains(&role.as_str()) {
                    let error = SpecError::new(
                        SpecErrorKind::UnknownKey { key: role.clone(), parent: Parent(path.clone()) },
                        path.key(role.clone()),
                    );
                    return Err(match crate::closest(role, ["agg", "ctx", "gen", "frontend"]) {
                        Some(best) => error.with_help(format!("did you mean `{best}`?")),
                        None => error.with_help("the keys are agg, ctx, gen and frontend"),
                    });
                }
                if command.trim().is_empty() {
                    return Err(SpecError::invalid(path.key(role.clone()), "the command is empty"));
                }
            }
            for role in Role::ALL {
                if raw_role(raw, role).is_some() && !commands.contains_key(role.as_str()) {
                    return Err(SpecError::new(
                        SpecErrorKind::MissingKey { key: role.as_str().into(), parent: Parent(path.clone()) },
                        path.clone(),
                    )
                    .with_help(format!("give the command that starts a {role} server")));
                }
            }
        }
        (_, false) => {
            return Err(SpecError::invalid(path, "`commands` applies only to `kind: custom`")
                .with_help("remove `engine.commands`, or set `engine.kind: custom`"))
        }
        (_, true) => {}
    }
    let (env, env_knobs) = knobs::env(None, raw.engine.env.as_ref().unwrap_or(&Default::default()))?;
    let (frontend_args, frontend_knobs) =
        knobs::frontend_args(raw.engine.frontend_args.as_ref().unwrap_or(&Default::default()))?;
    knobs.job.extend(env_knobs);
    knobs.job.extend(frontend_knobs);
    let venv = match &raw.engine.venv {
        Some(value) => {
            let (venv, knob) =
                knobs::one_or_axis(value, &KeyPath::keys("engine.venv"), KnobTarget::Venv, "venv")?;
            knobs.job.extend(knob);
            venv
        }
        None => None,
    };
    Ok(Engine {
        kind,
        backend: raw.engine.backend,
        dynamo,
        tasks: raw.engine.tasks.unwrap_or(default_tasks),
        commands,
        health: resolve_health(raw.engine.health.as_ref())?,
        metrics: resolve_metrics(raw.engine.metrics.as_ref())?,
        env,
        frontend_args,
        venv,
    })
}

fn resolve_cluster(raw: &RawSpec, knobs: &mut Knobs) -> Result<Cluster, SpecError> {
    let c = &raw.cluster;
    if c.gpus_per_node == 0 {
        return Err(SpecError::invalid(
            KeyPath::keys("cluster.gpus_per_node"),
            "a node needs at least one GPU",
        ));
    }
    if c.max_nodes == Some(0) {
        return Err(SpecError::invalid(KeyPath::keys("cluster.max_nodes"), "must be at least 1"));
    }
    for (key, value) in [("partition", &c.partition), ("account", &c.account), ("qos", &c.qos)] {
        if let Some(value) = value {
            if value.trim().is_empty() || value.contains(char::is_whitespace) {
                return Err(SpecError::invalid(
                    KeyPath::keys("cluster").key(key),
                    format!("`{value}` is not a SLURM {key} name"),
                )
                .with_help(format!("remove `cluster.{key}` to use the cluster's default")));
            }
        }
    }
    let sbatch = c.sbatch.clone().unwrap_or_default();
    for (i, directive) in sbatch.iter().enumerate() {
        if !directive.starts_with('-') || directive.contains(['\n', '\r']) {
            return Err(SpecError::invalid(
                KeyPath::keys("cluster.sbatch").index(i),
                format!("`{directive}` is not an sbatch option"),
            )
            .with_help("write each extra directive as a single option, e.g. \"--exclusive\" or \"--constraint=h100\""));
        }
    }
    let container = match &c.container {
        Some(container) => {
            let path = KeyPath::keys("cluster.container.image");
            let (image, knob) = knobs::one_or_axis(&container.image, &path, KnobTarget::Image, "image")?;
            knobs.job.extend(knob);
            Some(Container { image, mounts: container.mounts.clone() })
        }
        None => None,
    };
    let base_port = c.base_port.unwrap_or(8000);
    let frontend_port = c.frontend_port.unwrap_or(8333);
    if base_port == 0 || frontend_port == 0 {
        let key = if base_port == 0 { "cluster.base_port" } else { "cluster.frontend_port" };
        return Err(SpecError::invalid(KeyPath::keys(key), "port 0 cannot be listened on"));
    }
    if let Some(gb) = c.gpu_memory_gb {
        if !(gb.is_finite() && gb > 0.0) {
            return Err(SpecError::invalid(
                KeyPath::keys("cluster.gpu_memory_gb"),
                format!("{gb} GiB is not a GPU's memory"),
            )
            .with_help("give one GPU's memory in GiB, e.g. 80 for an H100 80GB"));
        }
    }
    let gpu_memory_utilization = c.gpu_memory_utilization.unwrap_or(0.9);
    if !(gpu_memory_utilization > 0.0 && gpu_memory_utilization <= 1.0) {
        return Err(SpecError::invalid(
            KeyPath::keys("cluster.gpu_memory_utilization"),
            format!("{gpu_memory_utilization} is not a share of the GPU's memory"),
        )
        .with_help("give a number above 0 and at most 1, e.g. 0.9 (vLLM's default)"));
    }
    Ok(Cluster {
        gpus_per_node: c.gpus_per_node,
        max_nodes: c.max_nodes,
        partition: c.partition.clone(),
        account: c.account.clone(),
        qos: c.qos.clone(),
        time_limit: c.time_limit.as_ref().map(|t| t.0.clone()),
        packing: c.packing.unwrap_or(Packing::Spread),
        segment: c.segment.unwrap_or(false),
        container,
        sbatch,
        base_port,
        frontend_port,
        templates_dir: c.templates_dir.clone(),
        gpu_memory_gb: c.gpu_memory_gb,
        gpu_memory_utilization,
    })
}

fn resolve_modes(raw: &OneOrMany<Mode>) -> Result<Vec<Mode>, SpecError> {
    let path = KeyPath::keys("mode");
    if raw.0.is_empty() {
        return Err(SpecError::invalid(path, "no mode given")
            .with_help("use `mode: agg`, `mode: disagg` or `mode: [agg, disagg]`"));
    }
    let mut modes = Vec::new();
    for (i, mode) in raw.0.iter().enumerate() {
        if modes.contains(mode) {
            return Err(SpecError::invalid(path.index(i), format!("`{}` is listed twice", mode.as_str())));
        }
        modes.push(*mode);
    }
    Ok(modes)
}

fn raw_role(raw: &RawSpec, role: Role) -> Option<&RawRole> {
    match role {
        Role::Agg => raw.agg.as_ref(),
        Role::Ctx => raw.ctx.as_ref(),
        Role::Gen => raw.gen.as_ref(),
    }
}

fn resolve_roles(raw: &RawSpec, modes: &[Mode], knobs: &mut Knobs) -> Result<Vec<RoleSpec>, SpecError> {
    let mut roles = Vec::new();
    for role in Role::ALL {
        let needed = modes.contains(&role.mode());
        match (raw_role(raw, role), needed) {
            (None, true) => {
                return Err(SpecError::new(
                    SpecErrorKind::MissingKey { key: role.as_str().into(), parent: Parent(KeyPath::root()) },
                    KeyPath::root(),
                )
                .with_help(match role.mode() {
                    Mode::Agg => "mode agg needs an `agg:` role with its axes",
                    Mode::Disagg => "mode disagg needs a `ctx:` role and a `gen:` role with their axes",
                }))
            }
            (Some(_), false) => {
                return Err(SpecError::rule(
                    KeyPath::keys(role.as_str()),
                    format!("`{role}:` is given but mode `{}` is not swept", role.mode().as_str()),
                )
                .with_help(format!("add `{}` to `mode`, or remove `{role}:`", role.mode().as_str())))
            }
            (Some(raw_role), true) => {
                let (engine_args, mut role_knobs) =
                    knobs::engine_args(role, raw_role.engine_args.as_ref().unwrap_or(&Default::default()))?;
                let (env, env_knobs) =
                    knobs::env(Some(role), raw_role.env.as_ref().unwrap_or(&Default::default()))?;
                role_knobs.extend(env_knobs);
                knobs.roles.push((role, role_knobs));
                roles.push(RoleSpec { role, engine_args, env })
            }
            (None, false) => {}
        }
    }
    Ok(roles)
}

fn resolve_workload(raw: &RawSpec) -> Result<Workload, SpecError> {
    let w = &raw.workload;
    let requests = w.requests.unwrap_or(Count::PerConcurrency(10));
    if matches!(requests, Count::Fixed(0) | Count::PerConcurrency(0)) {
        return Err(SpecError::invalid(
            KeyPath::keys("workload.requests"),
            "a point needs at least one request",
        ));
    }
    let load = resolve_load(w)?;
    Ok(Workload {
        concurrency_per_gen_server: w.concurrency_per_gen_server.unwrap_or(false),
        repeats: match w.repeats {
            Some(0) => {
                return Err(SpecError::invalid(
                    KeyPath::keys("workload.repeats"),
                    "a point is measured at least once",
                )
                .with_help(
                    "remove `repeats` to measure each point once, or give 3 or more for confidence intervals",
                ))
            }
            Some(n) => n,
            None => 1,
        },
        deployment_repeats: match w.deployment_repeats {
            Some(0) => {
                return Err(SpecError::invalid(
                    KeyPath::keys("workload.deployment_repeats"),
                    "a configuration is deployed at least once",
                )
                .with_help("remove `deployment_repeats` to deploy each configuration once"))
            }
            Some(n) => n,
            None => 1,
        },
        requests,
        warmup: w.warmup.unwrap_or(Count::PerConcurrency(2)),
        request_rates: resolve_rates(w)?,
        prefix_ratios: resolve_prefix_ratios(w)?,
        load,
    })
}

/// A number that must be finite and positive (or ≥ 0 with `zero_ok`).
fn positive(key: &str, value: Option<f64>, zero_ok: bool) -> Result<Option<f64>, SpecError> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 || (v == 0.0 && !zero_ok) => Err(SpecError::invalid(
            KeyPath::keys(key),
            if zero_ok { "must be a number ≥ 0" } else { "must be a number > 0" },
        )),
        other => Ok(other),
    }
}

/// `workload.request_rate`, one value or a list: each finite, positive and listed once.
fn resolve_rates(w: &crate::raw::RawWorkload) -> Result<Vec<Rate>, SpecError> {
    let Some(rates) = &w.request_rate else { return Ok(Vec::new()) };
    let path = KeyPath::keys("workload.request_rate");
    let paths = item_paths(&path, rates.0.len(), rates.1);
    let mut out: Vec<Rate> = Vec::with_capacity(rates.0.len());
    for (&rate, at) in rates.0.iter().zip(paths) {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(SpecError::invalid(at, "a request rate is a number of requests per second > 0")
                .with_help("e.g. `request_rate: [5, 10, 20]`; a closed loop has no rate"));
        }
        if out.contains(&Rate(rate)) {
            return Err(SpecError::invalid(at, format!("the rate {rate} is listed twice")));
        }
        out.push(Rate(rate));
    }
    if out.is_empty() {
        return Err(SpecError::invalid(path, "an empty list of rates").with_help(
            "give at least one rate, or remove `request_rate` for a closed loop at each concurrency",
        ));
    }
    Ok(out)
}

/// `workload.prefix_ratio`, one value or a list: each between 0 and 1 and listed once, for
/// synthetic prompts only (a dataset or a trace brings its own).
fn resolve_prefix_ratios(w: &crate::raw::RawWorkload) -> Result<Vec<crate::Ratio>, SpecError> {
    let Some(ratios) = &w.prefix_ratio else { return Ok(Vec::new()) };
    let path = KeyPath::keys("workload.prefix_ratio");
    for (key, given) in [("dataset", w.dataset.is_some()), ("trace", w.trace.is_some())] {
        if given {
            return Err(SpecError::rule(
                path.clone(),
                format!("shared prefixes are made in synthetic prompts, not in a `{key}`"),
            )
            .with_help("a prefix trace comes from `sweep-runner trace prefix --ratio R`"));
        }
    }
    let paths = item_paths(&path, ratios.0.len(), ratios.1);
    let mut out: Vec<crate::Ratio> = Vec::with_capacity(ratios.0.len());
    for (&ratio, at) in ratios.0.iter().zip(paths) {
        // -0 is 0: one ratio, one point id.
        let ratio = if ratio == 0.0 { 0.0 } else { ratio };
        if !(0.0..=1.0).contains(&ratio) {
            return Err(SpecError::invalid(at, format!("{ratio} is not a share of the prompt")).with_help(
                "give numbers from 0 (nothing shared) to 1, e.g. `prefix_ratio: [0.1, 0.5, 0.9]`",
            ));
        }
        if out.contains(&crate::Ratio(ratio)) {
            return Err(SpecError::invalid(at, format!("the ratio {ratio} is listed twice")));
        }
        out.push(crate::Ratio(ratio));
    }
    if out.is_empty() {
        return Err(SpecError::invalid(path, "an empty list of ratios")
            .with_help("give at least one ratio, or remove `prefix_ratio`"));
    }
    Ok(out)
}

fn resolve_load(w: &crate::raw::RawWorkload) -> Result<Load, SpecError> {
    let d = Load::default();
    // A rate without an arrival is Poisson, as `vllm bench serve --request-rate` sends it.
    let rate_search = w.search.as_ref().is_some_and(|s| s.axis == crate::SearchAxis::RequestRate);
    let arrival = w.arrival.unwrap_or(if w.trace.is_some() {
        ArrivalKind::Trace
    } else if w.request_rate.is_some() || rate_search {
        ArrivalKind::Poisson
    } else {
        ArrivalKind::Closed
    });
    let request_rate = w.request_rate.as_ref();
    match arrival {
        // A rate search brings its own rates.
        ArrivalKind::Constant | ArrivalKind::Poisson | ArrivalKind::Gamma
            if request_rate.is_none() && !rate_search =>
        {
            return Err(SpecError::new(
                SpecErrorKind::MissingKey {
                    key: "request_rate".into(),
                    parent: Parent(KeyPath::keys("workload")),
                },
                KeyPath::keys("workload.arrival"),
            )
            .with_help("an open loop needs `workload.request_rate` (requests per second)"));
        }
        ArrivalKind::Closed | ArrivalKind::Trace if request_rate.is_some() => {
            return Err(SpecError::invalid(
                KeyPath::keys("workload.request_rate"),
                "a request rate needs an open loop",
            )
            .with_help("set `workload.arrival` to constant, poisson or gamma"));
        }
        ArrivalKind::Trace if w.trace.is_none() => {
            return Err(SpecError::new(
                SpecErrorKind::MissingKey { key: "trace".into(), parent: Parent(KeyPath::keys("workload")) },
                KeyPath::keys("workload.arrival"),
            )
            .with_help("trace replay needs `workload.trace`, a mooncake-style JSONL file"));
        }
        _ => {}
    }
    if w.burstiness.is_some() && arrival != ArrivalKind::Gamma {
        return Err(SpecError::invalid(
            KeyPath::keys("workload.burstiness"),
            "burstiness shapes gamma arrivals only",
        )
        .with_help("set `workload.arrival: gamma`, or remove `burstiness`"));
    }
    if w.trace.is_some() && arrival != ArrivalKind::Trace {
        return Err(SpecError::invalid(
            KeyPath::keys("workload.trace"),
            "a trace is replayed with `arrival: trace`",
        ));
    }
    if w.trace_block_size == Some(0) {
        return Err(SpecError::invalid(KeyPath::keys("workload.trace_block_size"), "must be at least 1"));
    }
    let goodput = w.goodput.as_ref().map_or(Ok(Goodput::default()), |g| {
        Ok::<_, SpecError>(Goodput {
            time_to_first_token: positive(
                "workload.goodput.time_to_first_token",
                g.time_to_first_token,
                false,
            )?,
            inter_token_latency: positive(
                "workload.goodput.inter_token_latency",
                g.inter_token_latency,
                false,
            )?,
            request_latency: positive("workload.goodput.request_latency", g.request_latency, false)?,
        })
    })?;
    Ok(Load {
        endpoint: w.endpoint.unwrap_or(d.endpoint),
        streaming: w.streaming.unwrap_or(d.streaming),
        arrival,
        hashed_rate: None,
        burstiness: positive("workload.burstiness", w.burstiness, false)?.unwrap_or(d.burstiness),
        trace: w.trace.clone(),
        trace_block_size: w.trace_block_size.unwrap_or(d.trace_block_size),
        trace_speedup: positive("workload.trace_speedup", w.trace_speedup, false)?.unwrap_or(d.trace_speedup),
        isl_stddev: positive("workload.isl_stddev", w.isl_stddev, true)?.unwrap_or(d.isl_stddev),
        osl_stddev: positive("workload.osl_stddev", w.osl_stddev, true)?.unwrap_or(d.osl_stddev),
        seed: w.seed.unwrap_or(d.seed),
        duration: positive("workload.duration", w.duration, false)?,
        request_timeout: positive("workload.request_timeout", w.request_timeout, false)?
            .unwrap_or(d.request_timeout),
        extra_body: w.extra_body.clone().unwrap_or_default(),
        tokenizer: w.tokenizer.clone(),
        goodput,
        dep_ttft_correction: w.dep_ttft_correction.unwrap_or(d.dep_ttft_correction),
        enabled: w.load.unwrap_or(d.enabled),
        search: w.search.as_ref().map(|s| resolve_search(w, s, arrival)).transpose()?,
        dataset: w.dataset.as_ref().map(|d| resolve_dataset(w, d, arrival)).transpose()?,
        images: w.images.as_ref().map(|i| resolve_images(w, i)).transpose()?,
        prefix_prompts: match (w.prefix_prompts, &w.prefix_ratio) {
            (Some(0), _) => {
                return Err(SpecError::invalid(
                    KeyPath::keys("workload.prefix_prompts"),
                    "must be at least 1",
                ))
            }
            (Some(_), None) => {
                return Err(SpecError::rule(
                    KeyPath::keys("workload.prefix_prompts"),
                    "prefix prompts are shared by a `prefix_ratio` of each prompt",
                )
                .with_help("add `workload.prefix_ratio`, or remove `prefix_prompts`"))
            }
            (given, Some(_)) => Some(given.unwrap_or(1)),
            (None, None) => None,
        },
    })
}

fn resolve_images(
    w: &crate::raw::RawWorkload,
    i: &crate::raw::RawImages,
) -> Result<crate::Images, SpecError> {
    let at = |key: &str| KeyPath::keys(&format!("workload.images.{key}"));
    let count = i.count.unwrap_or(1);
    if count == 0 {
        return Err(SpecError::invalid(at("count"), "at least 1 image per request")
            .with_help("remove `workload.images` to send text only"));
    }
    for (key, value) in [("width", i.width), ("height", i.height)] {
        if !(1..=8192).contains(&value) {
            return Err(SpecError::invalid(at(key), format!("{value} pixels: give 1 to 8192")));
        }
    }
    if w.endpoint.is_some_and(|e| e != crate::Endpoint::Chat) {
        return Err(SpecError::rule(
            KeyPath::keys("workload.images"),
            "images are sent as chat `image_url` parts",
        )
        .with_help("use `endpoint: chat`, or remove `workload.images`"));
    }
    for (key, given) in [("dataset", w.dataset.is_some()), ("trace", w.trace.is_some())] {
        if given {
            return Err(SpecError::rule(
                KeyPath::keys("workload.images"),
                format!("synthetic images go with synthetic prompts, not a `{key}`"),
            )
            .with_help("a dataset names its own images (`image`/`images` on its lines)"));
        }
    }
    Ok(crate::Images {
        count,
        width: i.width,
        height: i.height,
        format: i.format.unwrap_or(crate::ImageFormat::Png),
    })
}

fn resolve_accuracy(a: &crate::raw::RawAccuracy) -> Result<crate::Accuracy, SpecError> {
    let at = |key: &str| KeyPath::keys(&format!("accuracy.{key}"));
    let positive = |key: &str, value: Option<u32>| match value {
        Some(0) => Err(SpecError::invalid(at(key), "must be at least 1")),
        other => Ok(other),
    };
    if a.questions.as_ref().is_some_and(|q| q.trim().is_empty()) {
        return Err(SpecError::invalid(at("questions"), "an empty path").with_help(format!(
            "give `{}` for the shipped arithmetic set, or a JSONL file of {{\"question\", \"answer\"}} lines",
            crate::Accuracy::BUILTIN
        )));
    }
    if let Some(min) = a.min_score {
        if !(0.0..=1.0).contains(&min) {
            return Err(SpecError::invalid(at("min_score"), "a score between 0 and 1"));
        }
    }
    let timeout = a.timeout.unwrap_or(1800.0);
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(SpecError::invalid(at("timeout"), "seconds > 0"));
    }
    let lm_eval = match &a.lm_eval {
        None => None,
        Some(l) => {
            let tasks: Vec<String> = l.tasks.0.clone();
            if tasks.is_empty() || tasks.iter().any(|t| t.trim().is_empty() || t.contains(',')) {
                return Err(SpecError::invalid(
                    at("lm_eval.tasks"),
                    "one or more task names, without commas",
                )
                .with_help("list lm-eval's task names, for example `[gsm8k]`"));
            }
            let command = l.command.clone().unwrap_or_else(|| "lm_eval".to_owned());
            if command.trim().is_empty() {
                return Err(SpecError::invalid(at("lm_eval.command"), "an empty command"));
            }
            Some(crate::LmEval {
                tasks,
                limit: positive("lm_eval.limit", l.limit)?,
                model: l.model.unwrap_or(crate::LmEvalModel::LocalCompletions),
                num_fewshot: l.num_fewshot,
                metric: l.metric.clone(),
                model_args: l.model_args.clone().filter(|a| !a.trim().is_empty()),
                command,
                args: l.args.clone(),
            })
        }
    };
    // The probe runs when named, or when nothing else would.
    let questions = match (&a.questions, &lm_eval) {
        (Some(q), _) => Some(q.trim().to_owned()),
        (None, None) => Some(crate::Accuracy::BUILTIN.to_owned()),
        (None, Some(_)) => None,
    };
    Ok(crate::Accuracy {
        questions,
        limit: positive("limit", a.limit)?,
        max_tokens: positive("max_tokens", a.max_tokens)?.unwrap_or(16),
        concurrency: positive("concurrency", a.concurrency)?.unwrap_or(8),
        min_score: a.min_score,
        timeout,
        lm_eval,
    })
}

fn resolve_dataset(
    w: &crate::raw::RawWorkload,
    d: &crate::raw::RawDataset,
    arrival: ArrivalKind,
) -> Result<crate::Dataset, SpecError> {
    if w.trace.is_some() {
        return Err(SpecError::rule(KeyPath::keys("workload.dataset"), "a trace brings its own prompts")
            .with_help("give `workload.trace` or `workload.dataset`, not both"));
    }
    if d.path.trim().is_empty() {
        return Err(SpecError::invalid(KeyPath::keys("workload.dataset.path"), "an empty path"));
    }
    let format = d.format.unwrap_or(crate::DatasetFormat::SingleTurn);
    if format == crate::DatasetFormat::MultiTurn && arrival != ArrivalKind::Closed {
        return Err(SpecError::rule(
            KeyPath::keys("workload.dataset.format"),
            "multi-turn sessions run in a closed loop: each turn waits for the previous answer",
        )
        .with_help("sweep `workload.concurrency` (the sessions in flight) instead of a request rate"));
    }
    Ok(crate::Dataset {
        path: d.path.clone(),
        format,
        fit_to_isl: d.fit_to_isl.unwrap_or(false),
        check: d.check.unwrap_or(true),
    })
}

fn resolve_search(
    w: &crate::raw::RawWorkload,
    s: &crate::raw::RawSearch,
    arrival: ArrivalKind,
) -> Result<crate::Search, SpecError> {
    let at = |key: &str| KeyPath::keys(&format!("workload.search.{key}"));
    if !(s.from.is_finite() && s.from > 0.0) {
        return Err(SpecError::invalid(at("from"), "the lowest load must be a number > 0"));
    }
    if !(s.to.is_finite() && s.to >= s.from) {
        return Err(SpecError::invalid(
            at("to"),
            format!("the highest load must be at least `from` ({})", s.from),
        ));
    }
    if s.axis == crate::SearchAxis::Concurrency && (s.from.fract() != 0.0 || s.to.fract() != 0.0) {
        return Err(SpecError::invalid(at("from"), "a concurrency search runs whole numbers of requests")
            .with_help("give `from` and `to` as integers"));
    }
    if s.axis == crate::SearchAxis::RequestRate {
        if w.request_rate.is_some() {
            return Err(SpecError::rule(
                KeyPath::keys("workload.request_rate"),
                "a request-rate search varies the rate itself",
            )
            .with_help("remove `workload.request_rate`; `search.from` and `search.to` bound it"));
        }
        if matches!(arrival, ArrivalKind::Closed | ArrivalKind::Trace) {
            return Err(SpecError::invalid(
                KeyPath::keys("workload.arrival"),
                "a request-rate search needs an open loop",
            )
            .with_help("set `workload.arrival` to constant, poisson or gamma, or leave it out"));
        }
    } else if arrival != ArrivalKind::Closed {
        return Err(SpecError::invalid(
            KeyPath::keys("workload.arrival"),
            "a concurrency search runs a closed loop",
        )
        .with_help("remove `workload.arrival`, or search over `request_rate`"));
    }
    let mut slo = Vec::new();
    for (metric, stats) in &s.slo {
        let path = at("slo").key(metric);
        if !crate::Slo::METRICS.contains(&metric.as_str()) {
            return Err(SpecError::invalid(path, format!("unknown metric `{metric}`"))
                .with_help(format!("the metrics are: {}", crate::Slo::METRICS.join(", "))));
        }
        for (stat, &max_ms) in stats {
            if !crate::Slo::STATS.contains(&stat.as_str()) {
                return Err(SpecError::invalid(path.key(stat), format!("unknown statistic `{stat}`"))
                    .with_help(format!("the statistics are: {}", crate::Slo::STATS.join(", "))));
            }
            if !(max_ms.is_finite() && max_ms > 0.0) {
                return Err(SpecError::invalid(path.key(stat), "a ceiling in ms > 0"));
            }
            slo.push(crate::Slo { metric: metric.clone(), stat: stat.clone(), max_ms });
        }
    }
    let gain = positive("workload.search.stop_when_gain_below", s.stop_when_gain_below, false)?;
    if slo.is_empty() && gain.is_none() {
        return Err(SpecError::rule(at("slo"), "a search needs something to stop it").with_help(
            "give SLOs (`slo: {time_to_first_token: {p99: 2000}}`), a saturation rule \
             (`stop_when_gain_below: 0.05`), or both",
        ));
    }
    let resolution = positive("workload.search.resolution", s.resolution, false)?.unwrap_or(0.05);
    Ok(crate::Search {
        axis: s.axis,
        from: s.from,
        to: s.to,
        slo,
        stop_when_gain_below: gain,
        resolution,
        requests: w.requests.unwrap_or(Count::PerConcurrency(10)),
        warmup: w.warmup.unwrap_or(Count::PerConcurrency(2)),
    })
}

fn resolve_health(raw: Option<&crate::raw::RawHealth>) -> Result<Health, SpecError> {
    let d = Health::default();
    let Some(raw) = raw else { return Ok(d) };
    Ok(Health {
        path: url_path(
            "engine.health.path",
            &raw.path,
            d.path,
            "e.g. `/health`; `null` means no HTTP check",
        )?,
        interval: positive("engine.health.interval", raw.interval, false)?.unwrap_or(d.interval),
        timeout: positive("engine.health.timeout", raw.timeout, false)?.unwrap_or(d.timeout),
    })
}

fn resolve_metrics(raw: Option<&crate::raw::RawMetrics>) -> Result<Metrics, SpecError> {
    let d = Metrics::default();
    let Some(raw) = raw else { return Ok(d) };
    let interval_ms = match raw.interval_ms {
        None => d.interval_ms,
        Some(ms) if ms < 100 => {
            return Err(SpecError::invalid(
                KeyPath::keys("engine.metrics.interval_ms"),
                "must be at least 100",
            )
            .with_help("a scrape of a large engine takes milliseconds of its CPU; 1000 is the default"))
        }
        Some(ms) => ms,
    };
    let gpu_interval_ms = match raw.gpu_interval_ms {
        None => d.gpu_interval_ms,
        Some(None) => None,
        Some(Some(ms)) if ms < 100 => {
            return Err(SpecError::invalid(
                KeyPath::keys("engine.metrics.gpu_interval_ms"),
                "must be at least 100",
            )
            .with_help("nvidia-smi samples at most every 100 ms; `null` turns GPU telemetry off"))
        }
        Some(Some(ms)) => Some(ms),
    };
    let dcgm_url = match &raw.dcgm_url {
        Some(url) if !url.starts_with("http://") || url.len() <= "http://".len() => {
            return Err(SpecError::invalid(
                KeyPath::keys("engine.metrics.dcgm_url"),
                format!("`{url}` is not an http:// URL"),
            )
            .with_help("e.g. `http://{host}:9400/metrics`: dcgm-exporter's endpoint, `{host}` standing for each node"))
        }
        other => other.clone(),
    };
    Ok(Metrics {
        gpu_interval_ms,
        dcgm_url,
        path: url_path(
            "engine.metrics.path",
            &raw.path,
            d.path,
            "e.g. `/metrics`; `null` turns scraping off",
        )?,
        interval_ms,
    })
}

/// A URL path key that `null` turns off: the default when missing, else as written (it must
/// start with `/`).
fn url_path(
    key: &str,
    raw: &Option<Option<String>>,
    default: Option<String>,
    help: &str,
) -> Result<Option<String>, SpecError> {
    match raw {
        None => Ok(default),
        Some(None) => Ok(None),
        Some(Some(path)) if !path.starts_with('/') => {
            Err(SpecError::invalid(KeyPath::keys(key), "a URL path starts with `/`").with_help(help))
        }
        Some(Some(path)) => Ok(Some(path.clone())),
    }
}

struct PendingAxis {
    name: AxisName,
    values: Vec<Written>,
    path: KeyPath,
    value_paths: Vec<KeyPath>,
    /// Values that come in pairs with another axis (`isl_osl`) may repeat on their own.
    paired: bool,
}

struct SpaceBuilder {
    axes: Vec<PendingAxis>,
    modes: Vec<Mode>,
}

/// The knobs found while resolving the spec: each role's, and the job's (`engine.env`,
/// `engine.frontend_args`, `engine.venv`, `cluster.container.image`).
#[derive(Default)]
pub(crate) struct Knobs {
    roles: Vec<(Role, Vec<PendingKnob>)>,
    job: Vec<PendingKnob>,
}

fn numbers(values: &OneOrMany<Number>, path: &KeyPath) -> (Vec<Written>, Vec<KeyPath>) {
    let written = values
        .0
        .iter()
        .map(|n| match n {
            Number::Int(v) => Written::Int(*v),
            Number::Expr(e) => Written::Expr(e.clone()),
        })
        .collect();
    (written, item_paths(path, values.0.len(), values.1))
}

fn item_paths(path: &KeyPath, len: usize, is_list: bool) -> Vec<KeyPath> {
    if is_list {
        (0..len).map(|i| path.index(i)).collect()
    } else {
        vec![path.clone(); len]
    }
}

impl SpaceBuilder {
    fn new(raw: &RawSpec, roles: &[RoleSpec], knobs: Knobs, modes: &[Mode]) -> Result<Self, SpecError> {
        let mut builder = Self { axes: Vec::new(), modes: modes.to_vec() };
        let Knobs { roles: mut role_knobs, job: job_knobs } = knobs;
        for spec in roles {
            let role = spec.role;
            let Some(r) = raw_role(raw, role) else { continue };
            let base = KeyPath::keys(role.as_str());
            for key in AxisKey::ROLE {
                let path = base.key(key.as_str());
                let written = match key {
                    AxisKey::Parallel => {
                        let default = OneOrMany(vec![Parallel::Tep], false);
                        let values = r.parallel.as_ref().unwrap_or(&default);
                        let written = values.0.iter().map(|p| Written::Str(p.as_str())).collect();
                        Some((written, item_paths(&path, values.0.len(), values.1)))
                    }
                    _ => {
                        let given = match key {
                            AxisKey::Servers => &r.servers,
                            AxisKey::Tp => &r.tp,
                            AxisKey::Pp => &r.pp,
                            AxisKey::Cp => &r.cp,
                            AxisKey::Batch => &r.batch,
                            AxisKey::MaxNumTokens => &r.max_num_tokens,
                            AxisKey::MaxSeqLen => &r.max_seq_len,
                            AxisKey::Mtp => &r.mtp,
                            _ => &r.eplb,
                        };
                        let default = match key {
                            AxisKey::Mtp | AxisKey::Eplb => Some(0),
                            AxisKey::Servers | AxisKey::Tp | AxisKey::Pp | AxisKey::Cp => Some(1),
                            _ => None,
                        };
                        match (given, default) {
                            (Some(values), _) => Some(numbers(values, &path)),
                            (None, Some(v)) => Some((vec![Written::Int(v)], vec![path.clone()])),
                            (None, None) if key == AxisKey::Batch => {
                                return Err(SpecError::new(
                                    SpecErrorKind::MissingKey { key: "batch".into(), parent: Parent(base.clone()) },
                                    base.clone(),
                                )
                                .with_help(format!(
                                    "give `{role}.batch`, the largest number of sequences each {role} server runs at once"
                                )))
                            }
                            (None, None) => None,
                        }
                    }
                };
                if let Some((values, value_paths)) = written {
                    builder.push(AxisName { role: Some(role), key }, values, path, value_paths, false)?;
                }
            }
            // A role's knobs right after its own axes; every knob before the workload's axes, so
            // that the points of one job stay consecutive.
            if let Some(at) = role_knobs.iter().position(|(r, _)| *r == role) {
                for knob in role_knobs.swap_remove(at).1 {
                    builder.push_knob(knob)?;
                }
            }
        }
        for knob in job_knobs {
            builder.push_knob(knob)?;
        }
        builder.push_workload(raw)?;
        Ok(builder)
    }

    fn push(
        &mut self,
        name: AxisName,
        values: Vec<Written>,
        path: KeyPath,
        value_paths: Vec<KeyPath>,
        paired: bool,
    ) -> Result<(), SpecError> {
        if values.is_empty() {
            return Err(SpecError::invalid(path, "the list of values is empty")
                .with_help("give at least one value, or remove the key to use its default"));
        }
        for (value, at) in values.iter().zip(&value_paths) {
            if let Written::Int(v) = value {
                check_range(&name, *v, at)?;
            }
        }
        if !paired {
            for (i, value) in values.iter().enumerate() {
                let earlier = values[..i].iter().any(|other| match (value, other) {
                    (Written::Int(a), Written::Int(b)) => a == b,
                    (Written::Str(a), Written::Str(b)) => a == b,
                    (Written::Expr(a), Written::Expr(b)) => a.trim() == b.trim(),
                    (Written::Json(a), Written::Json(b)) => a == b,
                    _ => false,
                });
                if earlier {
                    return Err(SpecError::invalid(
                        value_paths[i].clone(),
                        "this value is listed twice; each point would run twice",
                    )
                    .with_help("remove the repeated value"));
                }
            }
        }
        self.axes.push(PendingAxis { name, values, path, value_paths, paired });
        Ok(())
    }

    /// A knob that is an axis. Its type in expressions is its literal values' when they share
    /// one (integers, strings or booleans), else text (every value as written); a knob of
    /// expressions alone takes its expressions' type when they compile.
    fn push_knob(&mut self, knob: PendingKnob) -> Result<(), SpecError> {
        let literal: Vec<Value> = knob
            .values
            .iter()
            .filter_map(|w| match w {
                Written::Json(v) => Some(knob_value(v, None)),
                _ => None,
            })
            .collect();
        let ty = match literal.first() {
            Some(first) if literal.iter().all(|v| v.ty() == first.ty()) => first.ty(),
            Some(_) => Type::Str,
            None => Type::Int,
        };
        let role = match &knob.target {
            KnobTarget::EngineArg { role, .. } => Some(*role),
            KnobTarget::Env { role, .. } => *role,
            _ => None,
        };
        let key =
            AxisKey::Knob(Arc::new(Knob { target: knob.target, name: knob.name, short: knob.short, ty }));
        self.push(AxisName { role, key }, knob.values, knob.path, knob.value_paths, false)
    }

    fn push_workload(&mut self, raw: &RawSpec) -> Result<(), SpecError> {
        let w = &raw.workload;
        let base = KeyPath::keys("workload");
        match (&w.isl_osl, &w.isl, &w.osl) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(SpecError::rule(
                    base.key("isl_osl"),
                    "`isl_osl` pairs lengths; it cannot be combined with `isl` or `osl`",
                )
                .with_help("use either `isl` and `osl` (crossed) or `isl_osl` (paired)"))
            }
            (Some(pairs), None, None) => {
                let path = base.key("isl_osl");
                if pairs.is_empty() {
                    return Err(SpecError::invalid(path, "the list of pairs is empty"));
                }
                for (i, pair) in pairs.iter().enumerate() {
                    if pairs[..i].contains(pair) {
                        return Err(SpecError::invalid(path.index(i), "this pair is listed twice"));
                    }
                }
                for (key, pick) in [(AxisKey::Isl, 0), (AxisKey::Osl, 1)] {
                    let values = pairs
                        .iter()
                        .map(|p| match if pick == 0 { &p.0 } else { &p.1 } {
                            Number::Int(v) => Written::Int(*v),
                            Number::Expr(e) => Written::Expr(e.clone()),
                        })
                        .collect();
                    let value_paths = (0..pairs.len()).map(|i| path.index(i).index(pick)).collect();
                    self.push(AxisName { role: None, key }, values, path.clone(), value_paths, true)?;
                }
            }
            (None, isl, osl) => {
                for (key, given) in [(AxisKey::Isl, isl), (AxisKey::Osl, osl)] {
                    let Some(values) = given else {
                        return Err(SpecError::new(
                            SpecErrorKind::MissingKey {
                                key: key.as_str().into(),
                                parent: Parent(base.clone()),
                            },
                            base.clone(),
                        )
                        .with_help(
                            "give `isl` and `osl` (crossed), or `isl_osl: [[isl, osl], ...]` (paired)",
                        ));
                    };
                    let path = base.key(key.as_str());
                    let (written, paths) = numbers(values, &path);
                    self.push(AxisName { role: None, key }, written, path, paths, false)?;
                }
            }
        }
        let path = base.key("concurrency");
        let concurrency_search = w.search.as_ref().filter(|s| s.axis == crate::SearchAxis::Concurrency);
        let (written, paths) = match (&w.concurrency, concurrency_search) {
            (Some(_), Some(_)) => {
                return Err(SpecError::rule(path, "a concurrency search varies the concurrency itself")
                    .with_help("remove `workload.concurrency`; `search.from` and `search.to` bound it"))
            }
            (Some(values), None) => numbers(values, &path),
            // The search's point starts at `from`; its steps carry their own concurrency.
            (None, Some(search)) => (vec![Written::Int(search.from.max(1.0) as i64)], vec![path.clone()]),
            (None, None) => {
                return Err(SpecError::new(
                    SpecErrorKind::MissingKey { key: "concurrency".into(), parent: Parent(base.clone()) },
                    base,
                )
                .with_help("give `concurrency: [1, 8, 64]`, or a `search` over it"))
            }
        };
        self.push(AxisName { role: None, key: AxisKey::Concurrency }, written, path, paths, false)
    }

    fn lookup(&self, name: &str) -> Option<usize> {
        self.axes.iter().position(|a| a.name.to_string() == name)
    }

    fn all_names(&self) -> Vec<String> {
        std::iter::once("mode".to_owned()).chain(self.axes.iter().map(|a| a.name.to_string())).collect()
    }

    /// Resolves a name in an expression. Inside a role's axis, a bare axis key means that role's.
    fn bind(&self, name: &str, context: Option<Role>) -> Result<Binding, Vec<String>> {
        if name == "mode" {
            return Ok(Binding { slot: MODE_SLOT, ty: Type::Str });
        }
        let found = self.lookup(name).or_else(|| {
            let role = context?;
            self.lookup(&format!("{role}.{name}"))
        });
        match found {
            Some(axis) => Ok(Binding { slot: slot_of(axis), ty: self.axes[axis].name.key.ty() }),
            None => Err(self.all_names()),
        }
    }

    fn finish(self, raw: &RawSpec) -> Result<Space, SpecError> {
        let axes = self.compile_axes()?;
        let order = dependency_order(&axes)?;
        let groups = self.zip_groups(raw)?;
        let subspaces = self
            .modes
            .iter()
            .map(|&mode| {
                let present: Vec<usize> =
                    (0..axes.len()).filter(|&a| axes[a].name.role.is_none_or(|r| r.mode() == mode)).collect();
                let mut dims: Vec<Dim> = Vec::new();
                let mut dim_of_group: HashMap<usize, usize> = HashMap::new();
                for &axis in &present {
                    let group = groups[axis];
                    match dim_of_group.get(&group) {
                        Some(&d) => dims[d].axes.push(axis),
                        None => {
                            dim_of_group.insert(group, dims.len());
                            dims.push(Dim { axes: vec![axis], len: axes[axis].values.len() });
                        }
                    }
                }
                let derived = order.iter().copied().filter(|a| present.contains(a)).collect();
                Subspace { mode, axes: present, dims, derived }
            })
            .collect();
        let excludes = self.excludes(raw)?;
        let filter = match &raw.sweep.filter {
            None => None,
            Some(source) => {
                let path = KeyPath::keys("sweep.where");
                let expr = Expr::compile(source, &|name| self.bind(name, None))
                    .map_err(|e| expression_error(&path, e))?;
                if expr.ty() != Type::Bool {
                    return Err(SpecError::invalid(
                        path,
                        format!("`where` must be a condition, but this is {}", expr.ty()),
                    )
                    .with_help("compare values, e.g. `gen.tp * gen.servers <= 32`"));
                }
                Some(Filter { expr, path })
            }
        };
        Ok(Space { axes, subspaces, excludes, filter })
    }

    fn compile_axes(&self) -> Result<Vec<Axis>, SpecError> {
        let mut axes = Vec::with_capacity(self.axes.len());
        for pending in &self.axes {
            let mut values = Vec::with_capacity(pending.values.len());
            for (written, path) in pending.values.iter().zip(&pending.value_paths) {
                values.push(match written {
                    Written::Int(v) => AxisValue::Lit(Value::Int(*v)),
                    Written::Str(s) => AxisValue::Lit(Value::Str((*s).into())),
                    Written::Json(v) => AxisValue::Lit(knob_value(v, Some(pending.name.key.ty()))),
                    Written::Expr(source) => {
                        let role = pending.name.role;
                        let expr = Expr::compile(source, &|name| self.bind(name, role))
                            .map_err(|e| expression_error(path, e))?;
                        let expressions_only = pending.values.iter().all(|w| matches!(w, Written::Expr(_)));
                        if expr.ty() != pending.name.key.ty()
                            && !(expressions_only && pending.name.key.knob().is_some())
                        {
                            return Err(SpecError::invalid(
                                path.clone(),
                                format!(
                                    "`{}` needs {}, but this expression gives {}",
                                    pending.name,
                                    pending.name.key.ty(),
                                    expr.ty()
                                ),
                            ));
                        }
                        self.check_reach(pending, &expr, path)?;
                        AxisValue::Expr(expr)
                    }
                });
            }
            let mut name = pending.name.clone();
            if let (Some(knob), Some(AxisValue::Expr(expr))) = (name.key.knob(), values.first()) {
                if knob.ty != expr.ty() {
                    name.key = AxisKey::Knob(Arc::new(Knob { ty: expr.ty(), ..knob.clone() }));
                }
            }
            let written = if name.key.knob().is_some() {
                pending
                    .values
                    .iter()
                    .map(|w| match w {
                        Written::Json(v) => v.clone(),
                        _ => serde_json::Value::Null,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            axes.push(Axis {
                name,
                written,
                values,
                path: pending.path.clone(),
                value_paths: pending.value_paths.clone(),
            });
        }
        Ok(axes)
    }

    /// A role's derived value may read only axes that exist wherever that role does.
    fn check_reach(&self, pending: &PendingAxis, expr: &Expr, path: &KeyPath) -> Result<(), SpecError> {
        let Some(role) = pending.name.role else { return Ok(()) };
        for &slot in expr.slots() {
            if slot == MODE_SLOT {
                continue;
            }
            if let Some(other) = self.axes[slot - 1].name.role {
                if other.mode() != role.mode() {
                    return Err(SpecError::invalid(
                        path.clone(),
                        format!(
                            "`{}` reads `{}`, which {} points do not have",
                            pending.name,
                            self.axes[slot - 1].name,
                            role.mode().as_str()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Union of the zip groups (and the implicit `isl_osl` pairing): the group id of each axis.
    fn zip_groups(&self, raw: &RawSpec) -> Result<Vec<usize>, SpecError> {
        let mut parent: Vec<usize> = (0..self.axes.len()).collect();
        fn find(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(parent, a), find(parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        };
        let paired: Vec<usize> = (0..self.axes.len()).filter(|&a| self.axes[a].paired).collect();
        for pair in paired.windows(2) {
            union(&mut parent, pair[0], pair[1]);
        }
        for (g, group) in raw.sweep.zip.iter().enumerate() {
            let group_path = KeyPath::keys("sweep.zip").index(g);
            if group.len() < 2 {
                return Err(SpecError::invalid(group_path, "a zip group needs at least two axes")
                    .with_help("list the axes that vary together, e.g. [gen.batch, gen.mtp]"));
            }
            let mut members: Vec<usize> = Vec::new();
            for (i, name) in group.iter().enumerate() {
                let at = group_path.index(i);
                let axis =
                    self.lookup(name).ok_or_else(|| unknown_axis(&at, name, &self.all_names()[1..]))?;
                if members.contains(&axis) {
                    return Err(SpecError::invalid(at, format!("`{name}` is listed twice in this group")));
                }
                if let Some(&first) = members.first() {
                    let (a, b) = (&self.axes[first], &self.axes[axis]);
                    if let (Some(ra), Some(rb)) = (a.name.role, b.name.role) {
                        if ra.mode() != rb.mode() {
                            return Err(SpecError::rule(
                                at,
                                format!(
                                    "`{}` and `{}` are never in the same point; they cannot be zipped",
                                    a.name, b.name
                                ),
                            ));
                        }
                    }
                    if a.values.len() != b.values.len() {
                        return Err(SpecError::rule(
                            at,
                            format!(
                                "zipped axes need the same number of values: `{}` has {}, `{}` has {}",
                                a.name,
                                a.values.len(),
                                b.name,
                                b.values.len()
                            ),
                        )
                        .with_help(
                            "zipped axes vary together, value by value; give each the same number of values",
                        ));
                    }
                    union(&mut parent, first, axis);
                }
                members.push(axis);
            }
        }
        Ok((0..self.axes.len()).map(|a| find(&mut parent, a)).collect())
    }

    fn excludes(&self, raw: &RawSpec) -> Result<Vec<Exclude>, SpecError> {
        let mut excludes = Vec::new();
        for (i, entry) in raw.sweep.exclude.iter().enumerate() {
            let path = KeyPath::keys("sweep.exclude").index(i);
            if entry.is_empty() {
                return Err(SpecError::invalid(path, "an empty exclude entry would drop every point"));
            }
            let mut conditions = Vec::new();
            for (name, values) in entry {
                let at = path.key(name.clone());
                let (slot, ty, key) = if name == "mode" {
                    (MODE_SLOT, Type::Str, None)
                } else {
                    let axis = self.lookup(name).ok_or_else(|| unknown_axis(&at, name, &self.all_names()))?;
                    (slot_of(axis), self.axes[axis].name.key.ty(), Some(&self.axes[axis].name.key))
                };
                let mut accepted = Vec::new();
                let knob = key.is_some_and(|k| k.knob().is_some());
                for value in &values.0 {
                    accepted.push(match (value, ty) {
                        (Scalar::Int(v), Type::Int) => Value::Int(*v),
                        // A knob of mixed values compares as text.
                        (Scalar::Int(v), Type::Str) if knob => Value::Str(v.to_string().into()),
                        (Scalar::Str(s), Type::Str) if knob => Value::Str(s.as_str().into()),
                        (Scalar::Str(s), Type::Str) => {
                            let allowed: &[&str] =
                                if key.is_none() { &["agg", "disagg"] } else { &["tep", "dep"] };
                            if !allowed.contains(&s.as_str()) {
                                return Err(SpecError::new(
                                    SpecErrorKind::UnknownVariant {
                                        key: name.clone(),
                                        value: s.clone(),
                                        expected: allowed.join(" or "),
                                    },
                                    at,
                                ));
                            }
                            Value::Str(s.as_str().into())
                        }
                        (_, ty) => {
                            return Err(SpecError::invalid(at, format!("`{name}` takes {ty}")));
                        }
                    });
                }
                conditions.push((slot, accepted));
            }
            excludes.push(Exclude { conditions, path });
        }
        Ok(excludes)
    }
}

/// A knob's literal as an expression value: as itself when it is an integer, a string or a
/// boolean (and `ty`, when given, agrees), else its text.
fn knob_value(value: &serde_json::Value, ty: Option<Type>) -> Value {
    let own = match value {
        serde_json::Value::Number(n) if n.is_i64() => n.as_i64().map(Value::Int),
        serde_json::Value::String(text) => Some(Value::Str(text.as_str().into())),
        serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
        _ => None,
    };
    match own {
        Some(v) if ty.is_none_or(|ty| v.ty() == ty) => v,
        Some(Value::Str(text)) => Value::Str(text),
        _ => Value::Str(value.to_string().into()),
    }
}

fn check_range(name: &AxisName, value: i64, at: &KeyPath) -> Result<(), SpecError> {
    let (min, max) = (name.key.minimum(), name.key.maximum());
    if value < min {
        return Err(SpecError::invalid(at.clone(), format!("`{name}` must be at least {min}, not {value}")));
    }
    if value > max {
        return Err(SpecError::invalid(at.clone(), format!("`{name}` must be at most {max}, not {value}")));
    }
    Ok(())
}

fn unknown_axis(at: &KeyPath, name: &str, known: &[String]) -> SpecError {
    let error = SpecError::invalid(at.clone(), format!("`{name}` is not an axis of this sweep"));
    match (crate::closest(name, known.iter().map(String::as_str)), fixed_knob(name)) {
        (Some(best), _) => error.with_help(format!("did you mean `{best}`?")),
        (None, Some(help)) => error.with_help(help),
        (None, None) => error.with_help(format!("the axes are: {}", known.join(", "))),
    }
}

/// Help for a name that reads as a knob (`gen.engine_args.max_num_seqs`) but is no axis: the
/// value is fixed, or not set.
fn fixed_knob(name: &str) -> Option<String> {
    let knob = [".engine_args.", ".env.", "engine.frontend_args.", "engine.venv", "cluster.container.image"]
        .iter()
        .any(|part| name.contains(part));
    knob.then(|| {
        format!(
            "`{name}` is a fixed value (or not set); to vary it, write its values as `{{sweep: [a, b]}}` where it is set"
        )
    })
}

fn expression_error(path: &KeyPath, source: ExprError) -> SpecError {
    let help = match &source {
        ExprError::UnknownName { suggestion: Some(best), .. } => Some(format!("did you mean `{best}`?")),
        ExprError::UnknownName { name, .. } if fixed_knob(name).is_some() => fixed_knob(name),
        ExprError::UnknownName { known, .. } => Some(format!("the names are: {}", known.join(", "))),
        _ => None,
    };
    let error = SpecError::new(SpecErrorKind::Expression { key: path.to_string(), source }, path.clone());
    match help {
        Some(help) => error.with_help(help),
        None => error,
    }
}

/// Orders the axes with expressions so that each comes after the axes it reads.
fn dependency_order(axes: &[Axis]) -> Result<Vec<usize>, SpecError> {
    let reads = |axis: &Axis| -> Vec<usize> {
        let mut out: Vec<usize> = axis
            .values
            .iter()
            .filter_map(|v| match v {
                AxisValue::Expr(e) => Some(e.slots()),
                AxisValue::Lit(_) => None,
            })
            .flatten()
            .filter(|&&slot| slot != MODE_SLOT)
            .map(|&slot| slot - 1)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    };
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Visiting,
        Done,
    }
    fn visit(
        axis: usize,
        axes: &[Axis],
        reads: &dyn Fn(&Axis) -> Vec<usize>,
        state: &mut [State],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), SpecError> {
        match state[axis] {
            State::Done => return Ok(()),
            State::Visiting => {
                let start = stack.iter().position(|&a| a == axis).unwrap_or(0);
                let cycle: Vec<String> =
                    stack[start..].iter().chain([&axis]).map(|&a| format!("`{}`", axes[a].name)).collect();
                return Err(SpecError::rule(
                    axes[axis].path.clone(),
                    format!("derived values read each other in a cycle: {}", cycle.join(" reads ")),
                )
                .with_help("give one of them a literal value"));
            }
            State::New => {}
        }
        state[axis] = State::Visiting;
        stack.push(axis);
        for dep in reads(&axes[axis]) {
            visit(dep, axes, reads, state, stack, order)?;
        }
        stack.pop();
        state[axis] = State::Done;
        if axes[axis].has_expressions() {
            order.push(axis);
        }
        Ok(())
    }
    let mut state = vec![State::New; axes.len()];
    let mut order = Vec::new();
    for axis in 0..axes.len() {
        visit(axis, axes, &reads, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}
