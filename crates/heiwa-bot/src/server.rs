//! The interactions endpoint: Discord POSTs each slash command here (through
//! the tunnel or reverse proxy in front of this loopback listener). Every
//! request is verified before its body is read as JSON; a bad one gets 401
//! and changes nothing.

use crate::bot::Bot;
use crate::interaction::Interaction;
use crate::signature::verify;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use std::sync::Arc;

/// Interactions larger than this are not Discord's (they carry a command
/// and its options, a few KiB).
const MAX_BODY: usize = 64 * 1024;

pub fn router(bot: Arc<Bot>) -> Router {
    Router::new()
        .route("/interactions", post(interaction))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(bot)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

async fn interaction(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-signature-ed25519");
    let timestamp = header("x-signature-timestamp");
    if let Err(why) = verify(&bot.config.public_key, signature, timestamp, &body, unix_now()) {
        tracing::warn!(%why, "refused an unsigned interaction");
        return (StatusCode::UNAUTHORIZED, "invalid request signature").into_response();
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(interaction) => interaction,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("not an interaction: {error}")).into_response(),
    };
    Json(bot.handle(&interaction).await).into_response()
}
