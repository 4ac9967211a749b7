//! A simulated LLM inference engine for sweeps, tests and demos without a GPU: an OpenAI-compatible
//! HTTP server whose responses are timed by a continuous-batching model of an engine, in the
//! roles of a disaggregated deployment (agg, ctx, gen, and the router in front), with faults to
//! inject. `docs/mock-engine.md` documents the model, the flags and the faults.

pub mod config;
pub mod engine;
pub mod faults;
pub mod latency;
pub mod openai;
pub mod prefix;
pub mod router;
pub mod server;

use std::future::Future;
use std::io;

pub use config::Settings;
use sweep_folder::markers::ServerRole;
use sweep_folder::Registration;

/// Serves on `listener` until `shutdown` completes. Workers register in the rendezvous folder
/// once listening.
pub async fn serve(
    settings: Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let address = format!("{}:{}", settings.host, local.port());
    if let Some(path) = &settings.port_file {
        sweep_folder::file::write_atomically(path, local.port().to_string().as_bytes())
            .map_err(io::Error::other)?;
    }
    if let (Some(dir), role) = (&settings.rendezvous, settings.role) {
        if role != config::Role::Router {
            let role = match role {
                config::Role::Ctx => ServerRole::Ctx,
                config::Role::Gen => ServerRole::Gen,
                _ => ServerRole::Agg,
            };
            let registration = Registration {
                role,
                serving_type: Some(role.serving_type()),
                index: None,
                address: address.clone(),
                node: None,
                pid: Some(std::process::id()),
            };
            let path = dir.join(format!("{}-{}.json", role.as_str(), local.port()));
            sweep_folder::file::write(&path, &registration).map_err(io::Error::other)?;
        }
    }
    tracing::info!(role = settings.role.as_str(), %address, "listening");
    let app = server::App::new(settings, address);
    // Without TCP_NODELAY, Nagle's algorithm holds a small SSE chunk until the previous one is
    // acknowledged, delaying first tokens by milliseconds and distorting what clients measure.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, server::router(app)).with_graceful_shutdown(shutdown).await
}
