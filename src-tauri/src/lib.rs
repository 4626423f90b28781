//! The desktop app is glue: Tauri commands and events over `limb_core`.

use limb_core::agent::local::LocalAgent;
use limb_core::agent::Budget;
use limb_core::mesh::{LocalMesh, TaskView};
use std::sync::Arc;
use tauri::{Emitter, Manager, RunEvent};
use tokio::sync::Mutex;

/// The local mesh (hub + this machine's limb) and the agent that answers its
/// tasks (local memory, the model, the sandbox), once started.
struct Running {
    mesh: LocalMesh,
    agent: LocalAgent,
}

enum Mesh {
    Starting,
    Ready(Box<Running>),
    Failed(String),
}

struct MeshState(Mutex<Mesh>);

#[derive(serde::Serialize)]
struct TasksView {
    /// "starting", "ready" or "failed".
    status: &'static str,
    error: Option<String>,
    tasks: Vec<TaskView>,
}

/// The limb's version, data directory and parts, for the status view.
#[tauri::command]
fn limb_info() -> limb_core::LimbInfo {
    limb_core::LimbInfo::gather()
}

/// The tenant's tasks, live from the hub subscription.
#[tauri::command]
async fn tasks(state: tauri::State<'_, MeshState>) -> Result<TasksView, String> {
    Ok(match &*state.0.lock().await {
        Mesh::Starting => TasksView { status: "starting", error: None, tasks: vec![] },
        Mesh::Ready(running) => TasksView { status: "ready", error: None, tasks: running.mesh.tasks() },
        Mesh::Failed(error) => TasksView { status: "failed", error: Some(error.clone()), tasks: vec![] },
    })
}

#[tauri::command]
async fn submit_task(state: tauri::State<'_, MeshState>, payload: String) -> Result<(), String> {
    match &*state.0.lock().await {
        Mesh::Ready(running) => running.mesh.submit(&payload).await.map_err(|e| e.to_string()),
        Mesh::Starting => Err("the local hub is still starting; try again in a moment".into()),
        Mesh::Failed(error) => Err(format!("the local hub is not running: {error}")),
    }
}

async fn start_mesh(app: &tauri::AppHandle) -> Result<Running, String> {
    let parts = limb_core::config::Parts::from_env().map_err(|e| e.to_string())?;
    let data_dir = limb_core::config::data_dir();
    // The same memory `heiwa ingest` fills: the "local" tenant under the data directory.
    let agent = LocalAgent::open(&parts, &data_dir, "local", Budget::default(), None).await.map_err(|e| e.to_string())?;
    let executor = Arc::new(agent.executor(tokio::runtime::Handle::current()));
    let notifier = app.clone();
    let started = LocalMesh::start(&parts, &data_dir.join("mesh"), executor, move || {
        let _ = notifier.emit("tasks-changed", ());
    })
    .await;
    match started {
        Ok(mesh) => Ok(Running { mesh, agent }),
        Err(e) => {
            let _ = agent.close().await;
            Err(e.to_string())
        }
    }
}

pub fn run() {
    tauri::Builder::default()
        .manage(MeshState(Mutex::new(Mesh::Starting)))
        .setup(|app| {
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let mesh = match start_mesh(&handle).await {
                    Ok(mesh) => Mesh::Ready(Box::new(mesh)),
                    Err(error) => Mesh::Failed(error),
                };
                *handle.state::<MeshState>().0.lock().await = mesh;
                let _ = handle.emit("tasks-changed", ());
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![limb_info, tasks, submit_task])
        .build(tauri::generate_context!())
        .expect("the Heiwa window could not start")
        .run(|app, event| {
            if let RunEvent::Exit = event {
                // Stop the hub server and the limb with the app.
                let state = app.state::<MeshState>();
                let mut mesh = tauri::async_runtime::block_on(state.0.lock());
                if let Mesh::Ready(running) = std::mem::replace(&mut *mesh, Mesh::Starting) {
                    let Running { mut mesh, agent } = *running;
                    mesh.stop();
                    if let Err(error) = tauri::async_runtime::block_on(agent.close()) {
                        eprintln!("stopping local memory: {error}");
                    }
                }
            }
        });
}
