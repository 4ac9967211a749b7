//! `job.json`: one job as the templates saw it, flattened into plain values
//! (`docs/templates.md`). `sweep render` writes it beside the job's script; the runner's steps
//! read it to know the job's servers, frontend, load and points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sweep_plan::{Job, Plan};
use sweep_spec::{KnobTarget, Spec};

use crate::settings::{DynamoPlanes, Health, Load, Metrics, Model, Point, Role, RoleConfig};

/// Where the job's files live on the cluster's shared filesystem, and the runner binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPaths {
    pub sweep_dir: String,
    pub job_dir: String,
    /// The `sweep-runner` binary; the mock engine is looked up beside it.
    pub runner: String,
    pub bin_dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlurmContext {
    pub job_name: String,
    pub nodes: u32,
    pub ntasks: u32,
    pub ntasks_per_node: u32,
    pub gpus_per_node: u32,
    pub segment: Option<u32>,
    pub time_limit: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerContext {
    pub image: String,
    /// The spec's mounts plus the sweep folder and the runner's folder, so that the runner and
    /// the job's files are reachable inside the engine's image.
    pub mounts: Vec<String>,
}

/// One role of the job: its derived settings (`role`, `servers`, `tp`, … flattened in) and
/// its engine arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleContext {
    pub serving_type: String,
    #[serde(flatten)]
    pub config: RoleConfig,
    pub world_size: u64,
    /// The spec's engine arguments with this job's knob values in place.
    pub engine_args: BTreeMap<String, serde_json::Value>,
    /// Environment variables of this role's servers (`<role>.env`), knobs included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RoleContext {
    /// Format 1 wrote `role` twice (once of its own, once flattened in from the settings): the
    /// keys are gathered into a map first, where the two agree and become one.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            serving_type: String,
            #[serde(flatten)]
            config: RoleConfig,
            world_size: u64,
            #[serde(default)]
            engine_args: BTreeMap<String, serde_json::Value>,
            #[serde(default)]
            env: BTreeMap<String, String>,
        }
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let wire: Wire =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)?;
        Ok(RoleContext {
            serving_type: wire.serving_type,
            config: wire.config,
            world_size: wire.world_size,
            engine_args: wire.engine_args,
            env: wire.env,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerContext {
    /// `ctx`, `gen` or `agg`.
    pub role: Role,
    /// `CTX`, `GEN` or `AGG` (`DISAGG_SERVING_TYPE`).
    pub serving_type: String,
    pub index: u32,
    /// `gen_0`, …: the name of its log and status files.
    pub name: String,
    pub nodes: Vec<u32>,
    pub ntasks: u32,
    pub ntasks_per_node: u32,
    pub cuda_visible_devices: String,
    pub port: u16,
    /// The engine's launch command as shell text, filled in by rendering.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendContext {
    pub node: u32,
    pub port: u16,
    pub command: String,
}

/// One job, as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobContext {
    pub sweep: String,
    pub id: String,
    pub name: String,
    pub mode: String,
    pub engine: String,
    /// Dynamo's backend (`trtllm`, `vllm`, `sglang`, `mocker`), when `engine` is `dynamo`.
    pub backend: Option<String>,
    /// Dynamo's `discovery` (`etcd`, `file`) and `request_plane` (`nats`, `tcp`), when `engine`
    /// is `dynamo`.
    pub dynamo: Option<DynamoPlanes>,
    pub model: Model,
    pub slurm: SlurmContext,
    pub container: Option<ContainerContext>,
    pub paths: JobPaths,
    pub roles: Vec<RoleContext>,
    pub servers: Vec<ServerContext>,
    pub frontend: Option<FrontendContext>,
    pub benchmark_node: u32,
    /// How the benchmark step loads the servers, and how it decides they are ready.
    pub load: Load,
    pub health: Health,
    /// How the benchmark step scrapes the servers' `/metrics`; jobs rendered before sweep 0.4
    /// have none and scrape with the defaults.
    #[serde(default)]
    pub metrics: Metrics,
    pub points: Vec<Point>,
    /// Environment variables of every step (`engine.env`), knobs included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The frontend's or router's options (`engine.frontend_args`), knobs included.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub frontend_args: BTreeMap<String, serde_json::Value>,
    /// The Python environment the engine's steps run from (`engine.venv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venv: Option<String>,
    /// Every knob that is an axis of the sweep, by its axis name, with this job's value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub knobs: BTreeMap<String, serde_json::Value>,
    /// What the benchmark step asks the servers after the performance points (format 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<crate::settings::Accuracy>,
}

/// Puts `value` at `path` in nested maps, making the maps on the way (a value in the way of a
/// deeper knob is replaced by a map).
fn set_nested(map: &mut BTreeMap<String, serde_json::Value>, path: &[String], value: serde_json::Value) {
    fn put(slot: &mut serde_json::Value, path: &[String], value: serde_json::Value) {
        let Some((key, rest)) = path.split_first() else {
            *slot = value;
            return;
        };
        if !slot.is_object() {
            *slot = serde_json::Value::Object(Default::default());
        }
        if let Some(map) = slot.as_object_mut() {
            put(map.entry(key.clone()).or_insert(serde_json::Value::Null), rest, value);
        }
    }
    if let Some((first, rest)) = path.split_first() {
        put(map.entry(first.clone()).or_insert(serde_json::Value::Null), rest, value);
    }
}

impl JobContext {
    pub fn new(spec: &Spec, plan: &Plan, job: &Job, paths: JobPaths) -> Self {
        let layout = &job.layout;
        let cluster = &spec.cluster;
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        let image = job.knobs.iter().find(|k| k.knob.target == KnobTarget::Image).map(|k| text(&k.value));
        let container = cluster.container.as_ref().map(|c| {
            let mut mounts = c.mounts.clone();
            for dir in [&paths.sweep_dir, &paths.bin_dir] {
                let mount = format!("{dir}:{dir}");
                if !mounts.contains(&mount) {
                    mounts.push(mount);
                }
            }
            ContainerContext { image: image.clone().or_else(|| c.image.clone()).unwrap_or_default(), mounts }
        });
        let roles = job
            .roles
            .iter()
            .map(|config| {
                let role_spec = spec.roles.iter().find(|r| r.role == config.role);
                let mut engine_args = role_spec.map(|r| r.engine_args.clone()).unwrap_or_default();
                let mut env = role_spec.map(|r| r.env.clone()).unwrap_or_default();
                for k in &job.knobs {
                    match &k.knob.target {
                        KnobTarget::EngineArg { role, path } if *role == config.role => {
                            set_nested(&mut engine_args, path, k.value.clone())
                        }
                        KnobTarget::Env { role: Some(role), name } if *role == config.role => {
                            env.insert(name.clone(), text(&k.value));
                        }
                        _ => {}
                    }
                }
                RoleContext {
                    serving_type: config.role.serving_type().to_owned(),
                    config: config.into(),
                    world_size: config.world_size(),
                    engine_args,
                    env,
                }
            })
            .collect();
        let mut env = spec.engine.env.clone();
        let mut frontend_args = spec.engine.frontend_args.clone();
        let mut venv = spec.engine.venv.clone();
        for k in &job.knobs {
            match &k.knob.target {
                KnobTarget::Env { role: None, name } => {
                    env.insert(name.clone(), text(&k.value));
                }
                KnobTarget::FrontendArg { name } => {
                    frontend_args.insert(name.clone(), k.value.clone());
                }
                KnobTarget::Venv => venv = Some(text(&k.value)),
                _ => {}
            }
        }
        let servers = layout
            .servers()
            .into_iter()
            .map(|s| ServerContext {
                role: s.role.into(),
                serving_type: s.role.serving_type().to_owned(),
                name: format!("{}_{}", s.role.as_str(), s.index),
                index: s.index,
                nodes: s.nodes,
                ntasks: s.ntasks,
                ntasks_per_node: s.ntasks_per_node,
                cuda_visible_devices: s.cuda_visible_devices,
                port: s.port,
                command: String::new(),
            })
            .collect();
        JobContext {
            sweep: spec.name.clone(),
            id: job.id.to_string(),
            name: job.name.clone(),
            mode: job.mode.as_str().to_owned(),
            engine: spec.engine.kind.as_str().to_owned(),
            backend: spec.engine.backend.map(|b| b.as_str().to_owned()),
            dynamo: spec.engine.dynamo.map(DynamoPlanes::from),
            model: (&spec.model).into(),
            slurm: SlurmContext {
                // Unique per sweep and job; never used to find or cancel jobs (ids are).
                job_name: format!("{}.{}", spec.name, job.name),
                nodes: layout.nodes,
                ntasks: layout.ntasks,
                ntasks_per_node: layout.ntasks_per_node,
                gpus_per_node: layout.gpus_per_node,
                segment: layout.segment,
                time_limit: cluster.time_limit.clone(),
                partition: cluster.partition.clone(),
                account: cluster.account.clone(),
                qos: cluster.qos.clone(),
                extra: cluster.sbatch.clone(),
            },
            container,
            paths,
            roles,
            servers,
            frontend: layout.frontend.map(|f| FrontendContext {
                node: f.node,
                port: f.port,
                command: String::new(),
            }),
            benchmark_node: layout.benchmark_node,
            load: (&spec.workload.load).into(),
            health: (&spec.engine.health).into(),
            metrics: (&spec.engine.metrics).into(),
            points: plan.points[job.points.clone()].iter().map(Point::from).collect(),
            env,
            frontend_args,
            venv,
            knobs: job.knobs.iter().map(|k| (k.knob.name.clone(), k.value.clone())).collect(),
            accuracy: spec.accuracy.as_ref().map(Into::into),
        }
    }
}

impl JobContext {
    /// Every server's name, the frontend (`disagg_server_0`) last.
    pub fn server_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.servers.iter().map(|s| s.name.clone()).collect();
        if self.frontend.is_some() {
            names.push(crate::markers::ServerRole::DisaggServer.server_name(0));
        }
        names
    }

    /// GPUs the servers use.
    pub fn gpus_working(&self) -> u64 {
        self.roles.iter().map(|r| r.world_size * u64::from(r.config.servers)).sum()
    }

    /// GPUs SLURM gives the job.
    pub fn gpus_allocated(&self) -> u64 {
        u64::from(self.slurm.nodes) * u64::from(self.slurm.gpus_per_node)
    }

    /// The role that produces output tokens: GEN in disaggregated jobs, AGG otherwise.
    pub fn serving_role(&self) -> Option<&RoleContext> {
        let wanted = if self.mode == "disagg" { Role::Gen } else { Role::Agg };
        self.roles.iter().find(|r| r.config.role == wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_knob_joins_the_fixed_keys_beside_it() {
        let mut args: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(r#"{"kv_cache_config": {"enable_block_reuse": true}, "max_batch_size": 8}"#)
                .expect("json");
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        set_nested(&mut args, &path("kv_cache_config.free_gpu_memory_fraction"), 0.85.into());
        set_nested(&mut args, &path("cache_transceiver_config.backend"), "NIXL".into());
        set_nested(&mut args, &path("max_num_tokens"), 512.into());
        assert_eq!(
            serde_json::to_value(&args).expect("json"),
            serde_json::json!({
                "kv_cache_config": {"enable_block_reuse": true, "free_gpu_memory_fraction": 0.85},
                "cache_transceiver_config": {"backend": "NIXL"},
                "max_batch_size": 8,
                "max_num_tokens": 512
            })
        );
    }
}
