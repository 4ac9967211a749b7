//! Nodes, tasks, GPUs and ports of one job: a single model in which the packing policy chooses
//! between the formulas of the tools this replaces (`docs/layout.md`).
//!
//! Rules:
//! - a server's world size is `tp × pp × cp` (DEP counts its attention-DP ranks as `tp`);
//! - a server larger than a node fills whole nodes (`world % gpus_per_node == 0`), or it cannot be
//!   placed: no silent rounding up (DEP6 on 4-GPU nodes is an error, not 8 ranks);
//! - a server smaller than a node gets a node of its own (`spread`) or shares one with servers of
//!   the same role (`packed`, `gpus_per_node / world` per node); it never straddles two nodes;
//! - roles never share a node; GEN servers are placed first, then CTX (so the router and the
//!   benchmark client, on node 0, sit on the first GEN host), or the AGG servers alone;
//! - ports: servers count up from `base_port` in placement order, unique within the job, since
//!   servers of one job may share a host; the frontend listens on `frontend_port`.

use serde::{Deserialize, Serialize};
use sweep_spec::{Packing, Parallel, Role, TaskMode};

/// One role's settings for a job, after derivation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleConfig {
    pub role: Role,
    pub servers: u32,
    pub tp: u32,
    pub pp: u32,
    pub cp: u32,
    pub parallel: Parallel,
    pub batch: u32,
    pub max_num_tokens: Option<u32>,
    pub max_seq_len: Option<u32>,
    pub mtp: u32,
    pub eplb: u32,
}

impl RoleConfig {
    /// GPUs of one server.
    pub fn world_size(&self) -> u64 {
        u64::from(self.tp) * u64::from(self.pp) * u64::from(self.cp)
    }
}

/// Why a job cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A multi-node server whose GPUs do not fill whole nodes.
    #[error(
        "a {role} server needs {world} GPUs, more than one node of {gpus_per_node} GPUs, and {world} is \
         not a multiple of {gpus_per_node}, so it cannot fill whole nodes"
    )]
    NotWholeNodes { role: Role, world: u64, gpus_per_node: u32 },
    /// The servers' ports run into the frontend's port or past 65535.
    #[error("the {servers} servers take ports {first}..={last}, which {problem}")]
    Ports { servers: u64, first: u16, last: u64, problem: &'static str },
    /// Counts beyond what SLURM or this model can express.
    #[error("the job needs {what}, too many to express")]
    TooLarge { what: &'static str },
}

/// A role's share of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleLayout {
    pub role: Role,
    pub servers: u32,
    pub world_size: u32,
    pub nodes_per_server: u32,
    /// Servers of this role that share one node (1 unless packed and smaller than a node).
    pub servers_per_node: u32,
    pub nodes: u32,
    pub first_node: u32,
    pub first_port: u16,
}

/// The frontend (DISAGG_SERVER) that clients talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub node: u32,
    pub port: u16,
}

/// The whole job's allocation and the counts of its `srun` steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub gpus_per_node: u32,
    pub packing: Packing,
    pub tasks: TaskMode,
    pub nodes: u32,
    pub ntasks: u32,
    pub ntasks_per_node: u32,
    /// `--segment`, when the spec asks for the job's nodes to be one segment.
    pub segment: Option<u32>,
    /// GPUs SLURM gives the job: nodes × GPUs per node.
    pub gpus_allocated: u32,
    /// GPUs the servers use; per-GPU throughput is computed over these.
    pub gpus_working: u32,
    /// In placement order.
    pub roles: Vec<RoleLayout>,
    pub frontend: Option<Endpoint>,
    /// The node the BENCHMARK step runs on.
    pub benchmark_node: u32,
}

/// One server's place: nodes, GPUs on each node, port and task counts of its `srun` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerPlacement {
    pub role: Role,
    /// Index within its role: CTX_0, CTX_1, ...
    pub index: u32,
    /// Node indices within the job's allocation.
    pub nodes: Vec<u32>,
    /// `CUDA_VISIBLE_DEVICES` on each of its nodes.
    pub cuda_visible_devices: String,
    pub port: u16,
    pub ntasks: u32,
    pub ntasks_per_node: u32,
}

/// Settings of the cluster and engine that shape a layout.
#[derive(Debug, Clone, Copy)]
pub struct LayoutSettings {
    pub gpus_per_node: u32,
    pub packing: Packing,
    pub tasks: TaskMode,
    pub segment: bool,
    pub base_port: u16,
    pub frontend_port: u16,
    /// The engine always serves through a frontend (Dynamo), even one aggregated server.
    pub always_frontend: bool,
}

fn fits_u32(value: u64, what: &'static str) -> Result<u32, LayoutError> {
    u32::try_from(value).map_err(|_| LayoutError::TooLarge { what })
}

impl Layout {
    /// Lays out the roles of one job; `roles` is in spec order (agg, or ctx then gen).
    pub fn compute(roles: &[RoleConfig], settings: &LayoutSettings) -> Result<Layout, LayoutError> {
        let gpn = u64::from(settings.gpus_per_node);
        let placement_order = placement_order(roles);
        let mut role_layouts = Vec::with_capacity(roles.len());
        let (mut next_node, mut next_port, mut working) = (0u64, u64::from(settings.base_port), 0u64);
        for config in placement_order {
            let world = config.world_size();
            let servers = u64::from(config.servers);
            let (nodes_per_server, servers_per_node, nodes) = if world > gpn {
                if world % gpn != 0 {
                    return Err(LayoutError::NotWholeNodes {
                        role: config.role,
                        world,
                        gpus_per_node: settings.gpus_per_node,
                    });
                }
                let per_server = world / gpn;
                (per_server, 1, servers * per_server)
            } else {
                let per_node = match settings.packing {
                    Packing::Packed => gpn / world,
                    Packing::Spread => 1,
                };
                (1, per_node, servers.div_ceil(per_node))
            };
            role_layouts.push(RoleLayout {
                role: config.role,
                servers: config.servers,
                world_size: fits_u32(world, "GPUs per server")?,
                nodes_per_server: fits_u32(nodes_per_server, "nodes per server")?,
                servers_per_node: fits_u32(servers_per_node, "servers per node")?,
                nodes: fits_u32(nodes, "nodes")?,
                first_node: fits_u32(next_node, "nodes")?,
                first_port: u16::try_from(next_port).map_err(|_| LayoutError::TooLarge { what: "ports" })?,
            });
            next_node += nodes;
            next_port += servers;
            working += servers * world;
        }
        let total_servers: u64 = roles.iter().map(|r| u64::from(r.servers)).sum();
        let last_port = u64::from(settings.base_port) + total_servers - 1;
        let ports = |problem| LayoutError::Ports {
            servers: total_servers,
            first: settings.base_port,
            last: last_port,
            problem,
        };
        if last_port > u64::from(u16::MAX) {
            return Err(ports("runs past port 65535"));
        }
        let has_frontend = settings.always_frontend
            || match roles {
                [only] => only.role != Role::Agg || only.servers > 1,
                _ => true,
            };
        if has_frontend
            && (u64::from(settings.base_port)..=last_port).contains(&u64::from(settings.frontend_port))
        {
            return Err(ports(
                "include the frontend port; move `cluster.base_port` or `cluster.frontend_port`",
            ));
        }
        let nodes = fits_u32(next_node, "nodes")?;
        let (ntasks, ntasks_per_node) = match settings.tasks {
            TaskMode::PerGpu => (u64::from(nodes) * gpn, settings.gpus_per_node),
            TaskMode::PerNode => (u64::from(nodes), 1),
        };
        Ok(Layout {
            gpus_per_node: settings.gpus_per_node,
            packing: settings.packing,
            tasks: settings.tasks,
            nodes,
            ntasks: fits_u32(ntasks, "tasks")?,
            ntasks_per_node,
            segment: settings.segment.then_some(nodes),
            gpus_allocated: fits_u32(u64::from(nodes) * gpn, "GPUs")?,
            gpus_working: fits_u32(working, "GPUs")?,
            roles: role_layouts,
            frontend: has_frontend.then_some(Endpoint { node: 0, port: settings.frontend_port }),
            benchmark_node: 0,
        })
    }

    /// Every server's placement, in placement order. Computed on demand: a plan of many jobs keeps
    /// only the counts.
    pub fn servers(&self) -> Vec<ServerPlacement> {
        let mut out = Vec::new();
        for role in &self.roles {
            let world = role.world_size;
            for k in 0..role.servers {
                let (nodes, cuda_visible_devices) =
                    if role.nodes_per_server > 1 || world == self.gpus_per_node {
                        let first = role.first_node + k * role.nodes_per_server;
                        (
                            (first..first + role.nodes_per_server).collect(),
                            device_range(0, self.gpus_per_node.min(world)),
                        )
                    } else {
                        let node = role.first_node + k / role.servers_per_node;
                        let slot = k % role.servers_per_node;
                        (vec![node], device_range(slot * world, world))
                    };
                let (ntasks, ntasks_per_node) = match self.tasks {
                    TaskMode::PerGpu => (world, world.min(self.gpus_per_node)),
                    TaskMode::PerNode => (role.nodes_per_server, 1),
                };
                out.push(ServerPlacement {
                    role: role.role,
                    index: k,
                    nodes,
                    cuda_visible_devices,
                    // Fits: `compute` checked the last port.
                    port: role.first_port + k as u16,
                    ntasks,
                    ntasks_per_node,
                });
            }
        }
        out
    }
}

/// GEN before CTX; AGG alone.
fn placement_order(roles: &[RoleConfig]) -> Vec<&RoleConfig> {
    let mut ordered: Vec<&RoleConfig> = roles.iter().collect();
    ordered.sort_by_key(|r| match r.role {
        Role::Gen => 0,
        Role::Ctx => 1,
        Role::Agg => 2,
    });
    ordered
}

fn device_range(first: u32, count: u32) -> String {
    (first..first + count).map(|d| d.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(role: Role, servers: u32, tp: u32) -> RoleConfig {
        RoleConfig {
            role,
            servers,
            tp,
            pp: 1,
            cp: 1,
            parallel: Parallel::Tep,
            batch: 1,
            max_num_tokens: None,
            max_seq_len: None,
            mtp: 0,
            eplb: 0,
        }
    }

    fn settings(packing: Packing) -> LayoutSettings {
        LayoutSettings {
            gpus_per_node: 4,
            packing,
            tasks: TaskMode::PerGpu,
            segment: false,
            base_port: 8000,
            frontend_port: 8333,
            always_frontend: false,
        }
    }

    #[test]
    fn packing_decides_between_the_examples_and_perf_ci() {
        // layouts.md: 3 CTX servers of TP2 on 4-GPU nodes — the examples give 2 nodes, CI gives 3.
        let roles = [role(Role::Ctx, 3, 2), role(Role::Gen, 1, 4)];
        let packed = Layout::compute(&roles, &settings(Packing::Packed)).expect("placeable");
        let spread = Layout::compute(&roles, &settings(Packing::Spread)).expect("placeable");
        assert_eq!(packed.roles[1].nodes, 2);
        assert_eq!(spread.roles[1].nodes, 3);
        let servers = packed.servers();
        let ctx: Vec<_> = servers.iter().filter(|s| s.role == Role::Ctx).collect();
        assert_eq!(ctx[0].nodes, vec![1]);
        assert_eq!(ctx[0].cuda_visible_devices, "0,1");
        assert_eq!(ctx[1].cuda_visible_devices, "2,3");
        assert_eq!(ctx[2].nodes, vec![2]);
        assert_eq!(ctx.iter().map(|s| s.port).collect::<Vec<_>>(), vec![8001, 8002, 8003]);
    }

    #[test]
    fn packed_servers_never_straddle_nodes() {
        // TensorRT-LLM's formula gives ceil(5 × 3 / 8) = 2 nodes, splitting one server.
        let mut s = settings(Packing::Packed);
        s.gpus_per_node = 8;
        let layout = Layout::compute(&[role(Role::Agg, 5, 3)], &s).expect("placeable");
        assert_eq!((layout.nodes, layout.roles[0].servers_per_node), (3, 2));
        let devices: Vec<_> =
            layout.servers().iter().map(|p| (p.nodes[0], p.cuda_visible_devices.clone())).collect();
        assert_eq!(devices[1], (0, "3,4,5".to_owned()));
        assert_eq!(devices[4], (2, "0,1,2".to_owned()));
    }

    #[test]
    fn dep6_on_four_gpu_nodes_is_refused() {
        // pitfalls.md row 6: DEP6 was silently over-allocated to 8 ranks.
        let err = Layout::compute(&[role(Role::Agg, 1, 6)], &settings(Packing::Spread));
        assert_eq!(err, Err(LayoutError::NotWholeNodes { role: Role::Agg, world: 6, gpus_per_node: 4 }));
    }

    #[test]
    fn working_and_allocated_gpus_differ_when_servers_leave_gpus_idle() {
        let layout =
            Layout::compute(&[role(Role::Ctx, 3, 2), role(Role::Gen, 3, 2)], &settings(Packing::Spread))
                .expect("placeable");
        assert_eq!((layout.nodes, layout.gpus_allocated, layout.gpus_working), (6, 24, 12));
    }

    #[test]
    fn single_agg_server_has_no_frontend_and_ports_may_not_hit_it() {
        let one = Layout::compute(&[role(Role::Agg, 1, 4)], &settings(Packing::Spread)).expect("placeable");
        assert_eq!(one.frontend, None);
        let mut clash = settings(Packing::Spread);
        clash.frontend_port = 8001;
        let err = Layout::compute(&[role(Role::Agg, 2, 4)], &clash).expect_err("clash");
        assert!(matches!(err, LayoutError::Ports { .. }));
    }

    #[test]
    fn per_node_tasks_for_engines_that_spawn_their_workers() {
        let mut s = settings(Packing::Spread);
        s.tasks = TaskMode::PerNode;
        let layout = Layout::compute(&[role(Role::Agg, 2, 8)], &s).expect("placeable");
        assert_eq!((layout.nodes, layout.ntasks, layout.ntasks_per_node), (4, 4, 1));
        let servers = layout.servers();
        assert_eq!(servers[1].nodes, vec![2, 3]);
        assert_eq!((servers[1].ntasks, servers[1].ntasks_per_node), (2, 1));
    }
}
