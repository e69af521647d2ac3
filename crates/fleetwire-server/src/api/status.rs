//! `GET /v1/status`: the fleet's presence and this node's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use serde_json::json;

use crate::app::App;

/// The fleet's presence (every node, from the store) and this node's own connections. If the
/// store cannot be read, this node's figure stands in and `store` says why.
pub(super) async fn status(State(ctx): State<Arc<App>>) -> Json<serde_json::Value> {
    let here = ctx.sessions.online().len();
    let (online, store) = match ctx.store.players().online_count(crate::unix_now()).await {
        Ok(n) => (n as usize, "ok".to_owned()),
        Err(e) => (here, e.to_string()),
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "players_online": online,
        "node": ctx.node,
        "node_players_online": here,
        "player_connections": ctx.sessions.connections(),
        "store": store,
    }))
}
