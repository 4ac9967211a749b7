//! What the endpoint the benchmark loads says about its readiness: the instances its health body
//! lists, and whether its model list names the served model.
//!
//! Two health bodies are understood. Dynamo's frontend lists `instances[]`, each with the
//! `component` it serves (`backend` for aggregated and decode workers, `prefill` for prefill
//! workers), the `endpoint` (`generate`, and per-worker `worker_kv_query_…` entries under the
//! same `instance_id`) and an `instance_id`; a worker counts once, by its `generate` endpoint.
//! sweep's simulated router lists `instances[]` with a `role` (`ctx`, `gen`, `agg`). Other bodies
//! (vLLM's empty 200, SGLang's, a router's "OK") list nothing, and nothing is checked.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct HealthBody {
    #[serde(default)]
    instances: Option<Vec<Instance>>,
}

#[derive(Debug, Deserialize)]
struct Instance {
    /// sweep's simulated router.
    role: Option<String>,
    /// Dynamo.
    component: Option<String>,
    endpoint: Option<String>,
    instance_id: Option<serde_json::Value>,
}

/// The instances a health body lists, per role (`ctx`, `gen`, `agg`); `None` when it lists none
/// at all (not JSON, or no `instances` key). `disaggregated` tells what Dynamo's `backend`
/// component is: decode workers (gen) in a disaggregated job, aggregated ones otherwise.
pub fn listed_instances(body: &str, disaggregated: bool) -> Option<BTreeMap<String, usize>> {
    let body: HealthBody = serde_json::from_str(body).ok()?;
    let mut by_role: BTreeMap<String, usize> = BTreeMap::new();
    let mut dynamo: BTreeSet<(String, String)> = BTreeSet::new();
    for instance in body.instances? {
        if let Some(role) = instance.role {
            *by_role.entry(role).or_default() += 1;
        } else if let (Some(component), Some("generate")) = (instance.component, instance.endpoint.as_deref())
        {
            let role = match component.as_str() {
                "prefill" => "ctx",
                "backend" if disaggregated => "gen",
                "backend" => "agg",
                _ => continue,
            };
            let id = instance.instance_id.map(|id| id.to_string()).unwrap_or_default();
            dynamo.insert((role.to_owned(), id));
        }
    }
    for (role, _) in dynamo {
        *by_role.entry(role).or_default() += 1;
    }
    Some(by_role)
}

/// What is short of `expected` (servers per role) in a health body, e.g. "only 1 of 2 ctx
/// instances are listed (prefill workers, Dynamo's component `prefill`)"; `None` when nothing is
/// short or the body lists nothing.
pub fn missing_instances(
    body: &str,
    expected: &BTreeMap<String, usize>,
    disaggregated: bool,
) -> Option<String> {
    if expected.is_empty() {
        return None;
    }
    let listed = listed_instances(body, disaggregated)?;
    let short: Vec<String> = expected
        .iter()
        .filter_map(|(role, &want)| {
            let have = listed.get(role).copied().unwrap_or(0);
            (have < want).then(|| format!("{have} of {want} {role}"))
        })
        .collect();
    (!short.is_empty()).then(|| format!("only {} instances are listed", short.join(", ")))
}

#[derive(Debug, Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

/// Whether an OpenAI `GET /v1/models` body lists `model`; `Err` with what it lists instead.
pub fn lists_model(body: &str, model: &str) -> Result<(), String> {
    let list: ModelList =
        serde_json::from_str(body).map_err(|e| format!("/v1/models is not an OpenAI model list: {e}"))?;
    if list.data.iter().any(|m| m.id == model) {
        return Ok(());
    }
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    Err(if ids.is_empty() {
        format!("/v1/models lists no model yet (waiting for `{model}`)")
    } else {
        format!("/v1/models lists {} but not `{model}`", ids.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dynamo 1.6.1's frontend with two aggregated mocker workers, as it answered here (trimmed
    /// transports): two `generate` instances and each worker's KV-query endpoint.
    const DYNAMO_AGG: &str = r#"{"status":"healthy","endpoints":["dyn://dynamo.backend.generate"],"instances":[
        {"component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":12789546380814902471,"transport":{"tcp":"a"}},
        {"component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":15096198530440850956,"transport":{"tcp":"b"}},
        {"component":"backend","endpoint":"worker_kv_query_source_18c58fd599f9e8","namespace":"dynamo","instance_id":15096198530440850956},
        {"component":"backend","endpoint":"worker_kv_query_source_a4fa4735c6d89","namespace":"dynamo","instance_id":12789546380814902471}]}"#;

    #[test]
    fn dynamo_instances_count_once_per_worker_by_component() {
        assert_eq!(listed_instances(DYNAMO_AGG, false), Some(BTreeMap::from([("agg".to_owned(), 2)])));
        assert_eq!(listed_instances(DYNAMO_AGG, true), Some(BTreeMap::from([("gen".to_owned(), 2)])));
        let disagg = r#"{"instances":[
            {"component":"prefill","endpoint":"generate","instance_id":1},
            {"component":"prefill","endpoint":"generate","instance_id":2},
            {"component":"prefill","endpoint":"worker_kv_query_source_x","instance_id":2},
            {"component":"backend","endpoint":"generate","instance_id":3}]}"#;
        let expected = BTreeMap::from([("ctx".to_owned(), 2), ("gen".to_owned(), 1)]);
        assert_eq!(missing_instances(disagg, &expected, true), None);
        let more = BTreeMap::from([("ctx".to_owned(), 3), ("gen".to_owned(), 2)]);
        assert_eq!(
            missing_instances(disagg, &more, true).as_deref(),
            Some("only 2 of 3 ctx, 1 of 2 gen instances are listed")
        );
    }

    #[test]
    fn the_simulated_router_lists_roles() {
        let expected = BTreeMap::from([("ctx".to_owned(), 2), ("gen".to_owned(), 1)]);
        let body = r#"{"instances": [{"role": "ctx"}, {"role": "gen"}]}"#;
        assert_eq!(
            missing_instances(body, &expected, true).as_deref(),
            Some("only 1 of 2 ctx instances are listed")
        );
        let body = r#"{"instances": [{"role": "ctx"}, {"role": "ctx"}, {"role": "gen"}]}"#;
        assert_eq!(missing_instances(body, &expected, true), None);
        let agg = BTreeMap::from([("agg".to_owned(), 2)]);
        let body = r#"{"status": "waiting for workers", "instances": []}"#;
        assert_eq!(
            missing_instances(body, &agg, false).as_deref(),
            Some("only 0 of 2 agg instances are listed")
        );
    }

    #[test]
    fn bodies_that_list_nothing_are_not_checked() {
        let expected = BTreeMap::from([("agg".to_owned(), 2)]);
        for body in ["OK", "", "{}", r#"{"status":"healthy"}"#] {
            assert_eq!(missing_instances(body, &expected, false), None, "{body:?}");
        }
    }

    #[test]
    fn the_model_list_must_name_the_served_model() {
        let body = r#"{"object":"list","data":[{"id":"tiny","object":"model"}]}"#;
        assert_eq!(lists_model(body, "tiny"), Ok(()));
        assert_eq!(lists_model(body, "big").expect_err("not listed"), "/v1/models lists tiny but not `big`");
        assert!(lists_model(r#"{"object":"list","data":[]}"#, "tiny")
            .expect_err("empty")
            .contains("no model yet"));
        assert!(lists_model("<html>", "tiny").is_err());
    }
}
