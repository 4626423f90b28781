//! The desktop app is glue: Tauri commands and events over `limb_core`.

use limb_core::mesh::{LocalMesh, TaskView};
use tauri::{Emitter, Manager, RunEvent};
use tokio::sync::Mutex;

/// The local mesh the app runs (hub + this machine's limb), once started.
enum Mesh {
    Starting,
    Ready(Box<LocalMesh>),
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
        Mesh::Ready(mesh) => TasksView { status: "ready", error: None, tasks: mesh.tasks() },
        Mesh::Failed(error) => TasksView { status: "failed", error: Some(error.clone()), tasks: vec![] },
    })
}

#[tauri::command]
async fn submit_task(state: tauri::State<'_, MeshState>, payload: String) -> Result<(), String> {
    match &*state.0.lock().await {
        Mesh::Ready(mesh) => mesh.submit(&payload).await.map_err(|e| e.to_string()),
        Mesh::Starting => Err("the local hub is still starting; try again in a moment".into()),
        Mesh::Failed(error) => Err(format!("the local hub is not running: {error}")),
    }
}

async fn start_mesh(app: &tauri::AppHandle) -> Result<LocalMesh, String> {
    let parts = limb_core::config::Parts::from_env().map_err(|e| e.to_string())?;
    let dir = limb_core::config::data_dir().join("mesh");
    let notifier = app.clone();
    LocalMesh::start(&parts, &dir, move || {
        let _ = notifier.emit("tasks-changed", ());
    })
    .await
    .map_err(|e| e.to_string())
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
                if let Mesh::Ready(mesh) = &mut *mesh {
                    mesh.stop();
                }
            }
        });
}
