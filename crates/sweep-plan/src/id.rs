//! Content-hashed ids of jobs and points: the same configuration gives the same id on any
//! machine and in any sweep; changing any value that changes what is measured changes the id.
//!
//! Ids cover the model, the engine (with a custom engine's commands), the container image, the GPUs per node, the packing, the
//! mode, every role's values and engine arguments, and the point's workload and request counts.
//! They leave out what does not change a measurement (the sweep's name, partition, account,
//! time limit, extra sbatch lines), so a resumed sweep recognises points it already measured.
//! Fields are length-prefixed and integers little-endian, so the bytes hashed are the same on
//! every platform.

use std::fmt;

use serde::Serialize;
use sweep_spec::{Mode, Spec};

use crate::layout::RoleConfig;
use crate::Point;

/// 64 bits of a BLAKE3 digest, shown as 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Id {
    type Err = String;

    /// 16 hex digits, as [`Id`] is shown.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() != 16 {
            return Err(format!("an id is 16 hex digits, not `{text}`"));
        }
        u64::from_str_radix(text, 16).map(Id).map_err(|_| format!("an id is 16 hex digits, not `{text}`"))
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

struct Fields(blake3::Hasher);

impl Fields {
    fn new(domain: &str) -> Self {
        let mut fields = Fields(blake3::Hasher::new());
        fields.text(domain);
        fields
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.0.update(&(text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
        self
    }

    fn int(&mut self, value: u64) -> &mut Self {
        self.0.update(&value.to_le_bytes());
        self
    }

    fn optional(&mut self, value: Option<u32>) -> &mut Self {
        match value {
            Some(v) => self.int(1).int(u64::from(v)),
            None => self.int(0),
        }
    }

    fn finish(&self) -> Id {
        first_64_bits(self.0.finalize())
    }
}

/// The id of a configuration's `k`th deployment (`workload.deployment_repeats`, k ≥ 1): the
/// first keeps the configuration's own id.
pub fn deployment(job: Id, k: u32) -> Id {
    let mut f = Fields::new("sweep/deployment/v1");
    f.int(job.0).int(u64::from(k));
    f.finish()
}

/// The id of a deployment: everything that is fixed while its servers run.
pub fn job_id(spec: &Spec, mode: Mode, roles: &[RoleConfig], knobs: &[crate::KnobValue]) -> Id {
    let mut f = Fields::new("sweep/job/v1");
    f.text(&spec.model.path).text(&spec.model.served_name);
    f.text(spec.engine.kind.as_str());
    f.text(spec.engine.backend.map_or("", |b| b.as_str()));
    f.text(&format!("{:?}", spec.engine.tasks));
    // Fields added after v1 are hashed only when set, so that existing ids stay the same.
    if !spec.engine.commands.is_empty() {
        f.text("engine.commands").text(&serde_json::to_string(&spec.engine.commands).unwrap_or_default());
    }
    if let Some(planes) = spec.engine.dynamo.filter(|p| {
        (p.discovery, p.request_plane) != (sweep_spec::Discovery::Etcd, sweep_spec::RequestPlane::Nats)
    }) {
        f.text("engine.dynamo").text(&serde_json::to_string(&planes).unwrap_or_default());
    }
    f.text(spec.cluster.container.as_ref().and_then(|c| c.image.as_deref()).unwrap_or(""));
    f.int(u64::from(spec.cluster.gpus_per_node));
    f.text(&format!("{:?}", spec.cluster.packing));
    f.text(mode.as_str());
    for config in roles {
        f.text(config.role.as_str());
        for value in [config.servers, config.tp, config.pp, config.cp, config.batch, config.mtp, config.eplb]
        {
            f.int(u64::from(value));
        }
        f.text(config.parallel.as_str());
        f.optional(config.max_num_tokens).optional(config.max_seq_len);
        let args = spec.roles.iter().find(|r| r.role == config.role).map(|r| &r.engine_args);
        // A BTreeMap of serde_json values serialises with sorted keys: canonical.
        f.text(&args.map(|a| serde_json::to_string(a).unwrap_or_default()).unwrap_or_default());
    }
    // Knobs and fixed environments came after v1: hashed only when present.
    let env = |role: Option<sweep_spec::Role>| match role {
        Some(role) => spec.roles.iter().find(|r| r.role == role).map(|r| &r.env).filter(|e| !e.is_empty()),
        None => Some(&spec.engine.env).filter(|e| !e.is_empty()),
    };
    for (label, vars) in std::iter::once(("engine.env".to_owned(), env(None)))
        .chain(roles.iter().map(|r| (format!("{}.env", r.role), env(Some(r.role)))))
    {
        if let Some(vars) = vars {
            f.text(&label).text(&serde_json::to_string(vars).unwrap_or_default());
        }
    }
    if !spec.engine.frontend_args.is_empty() {
        f.text("engine.frontend_args")
            .text(&serde_json::to_string(&spec.engine.frontend_args).unwrap_or_default());
    }
    if let Some(venv) = &spec.engine.venv {
        f.text("engine.venv").text(venv);
    }
    for knob in knobs {
        f.text(&knob.knob.name).text(&knob.value.to_string());
    }
    f.finish()
}

/// The id of a point of job `job`, from its workload and request counts (its own `id` and `job`
/// index are not read). Called once per point, so it hashes one fixed buffer in a single call.
pub fn point_id(job: Id, key: &Point) -> Id {
    const DOMAIN: &[u8; 16] = b"sweep/point/v1\0\0";
    let fields = [
        job.0,
        u64::from(key.isl),
        u64::from(key.osl),
        u64::from(key.concurrency),
        key.effective_concurrency,
        key.requests,
        key.warmup,
    ];
    // The rate, hashed only when there is one, so closed-loop ids stay what they were.
    // So is a search step's search: a step never shares its planned point's id. A prefix ratio
    // comes after both (each then written, `u64::MAX` for none), and the three lengths (1, 2, 3
    // extra fields) keep the forms apart.
    let rate = key.request_rate.map(|r| r.0.to_bits());
    let search = key.search.map(|s| s.0);
    let prefix = key.prefix_ratio.map(|p| p.0.to_bits());
    // A repetition after the first comes after all three (each written, `u64::MAX` for none):
    // 4 extra fields, a form of its own.
    let extra: Vec<u64> = match (rate, search, prefix, key.repeat) {
        (rate, None, None, 0) => rate.into_iter().collect(),
        (rate, Some(search), None, 0) => vec![rate.unwrap_or(u64::MAX), search],
        (rate, search, Some(prefix), 0) => vec![rate.unwrap_or(u64::MAX), search.unwrap_or(u64::MAX), prefix],
        (rate, search, prefix, repeat) => vec![
            rate.unwrap_or(u64::MAX),
            search.unwrap_or(u64::MAX),
            prefix.unwrap_or(u64::MAX),
            u64::from(repeat),
        ],
    };
    let mut buffer = [0u8; 16 + 11 * 8];
    buffer[..16].copy_from_slice(DOMAIN);
    for (chunk, value) in
        buffer[16..].chunks_exact_mut(8).zip(fields.into_iter().chain(extra.iter().copied()))
    {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    first_64_bits(blake3::hash(&buffer[..16 + (7 + extra.len()) * 8]))
}

/// The id points of `job` are hashed under: the job's own when the load settings are the
/// defaults (so ids from before these settings existed stay valid), else mixed with a hash of
/// the settings that change what is measured (not `enabled`, which only says whether to run).
pub fn with_load(job: Id, load: &sweep_spec::Load) -> Id {
    let measured = sweep_spec::Load { enabled: true, ..load.clone() };
    if measured == sweep_spec::Load::default() {
        return job;
    }
    let mut f = Fields::new("sweep/load/v1");
    f.int(job.0).text(&serde_json::to_string(&measured).unwrap_or_default());
    f.finish()
}

fn first_64_bits(hash: blake3::Hash) -> Id {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    Id(u64::from_le_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_pinned() {
        // A fixed input must give this id on every machine and in every build: if this fails,
        // ids changed and every existing sweep directory would stop resuming.
        let key = Point {
            id: Id(0),
            job: 7,
            isl: 1024,
            osl: 128,
            concurrency: 8,
            effective_concurrency: 8,
            request_rate: None,
            prefix_ratio: None,
            requests: 80,
            warmup: 16,
            search: None,
            repeat: 0,
        };
        assert_eq!(point_id(Id(42), &key).to_string(), "ee760a3e03443e7d");
        let rated = Point { request_rate: Some(sweep_spec::Rate(2.5)), ..key };
        assert_eq!(point_id(Id(42), &rated).to_string(), "b86d5d0fce182b21", "a rate's ids are pinned too");
        assert_ne!(point_id(Id(42), &rated), point_id(Id(42), &key));
        assert_ne!(
            point_id(Id(42), &rated),
            point_id(Id(42), &Point { request_rate: Some(sweep_spec::Rate(5.0)), ..key })
        );
        let shared = Point { prefix_ratio: Some(sweep_spec::Ratio(0.5)), ..key };
        assert_eq!(point_id(Id(42), &shared).to_string(), "c63c9ebf258b5ecc", "so are a prefix ratio's");
        assert_ne!(point_id(Id(42), &shared), point_id(Id(42), &key));
        assert_ne!(
            point_id(Id(42), &shared),
            point_id(Id(42), &Point { prefix_ratio: Some(sweep_spec::Ratio(0.0)), ..key }),
            "a ratio of 0 is a point of its own, not the point without the axis"
        );
        let other = Point { concurrency: 16, ..key };
        assert_eq!(point_id(Id(42), &Point { id: Id(9), job: 0, ..key }), point_id(Id(42), &key));
        assert_ne!(point_id(Id(42), &other), point_id(Id(42), &key));
        assert_ne!(point_id(Id(43), &key), point_id(Id(42), &key));
        // Each repetition after the first is a point of its own, apart from every other form.
        let again = Point { repeat: 1, ..key };
        assert_ne!(point_id(Id(42), &again), point_id(Id(42), &key));
        assert_ne!(point_id(Id(42), &again), point_id(Id(42), &Point { repeat: 2, ..key }));
        assert_ne!(point_id(Id(42), &Point { repeat: 1, ..shared }), point_id(Id(42), &shared));
    }

    #[test]
    fn an_unset_tokenizer_leaves_load_ids_as_they_were() {
        let load = sweep_spec::Load { seed: 7, ..sweep_spec::Load::default() };
        // The id hashes the serialized settings: a key added later must not appear when unset.
        let text = serde_json::to_string(&load).expect("serializes");
        assert!(!text.contains("tokenizer"), "{text}");
        let job = Id(42);
        let counted = sweep_spec::Load { tokenizer: Some("/models/x/tokenizer.json".into()), ..load.clone() };
        assert_ne!(with_load(job, &counted), with_load(job, &load));
        assert_ne!(with_load(job, &load), job);
    }

    #[test]
    fn the_load_hash_still_carries_a_null_request_rate() {
        // Rates moved into the points; the load's JSON must read as it did before, or every
        // point id of a sweep with load keys set would change.
        let text = serde_json::to_string(&sweep_spec::Load { seed: 7, ..sweep_spec::Load::default() })
            .expect("serializes");
        assert!(text.contains(r#""arrival":"closed","request_rate":null,"burstiness""#), "{text}");
    }
}
