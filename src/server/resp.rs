//! RESP connections (placeholder until the RESP front end lands).

use glommio::net::TcpStream;

use crate::config::Limits;
use crate::shard::Shard;

/// Serves one RESP connection.
pub async fn serve(_shard: &Shard, stream: TcpStream, _limits: &Limits) {
    drop(stream);
}

/// Rejects a connection over the limit.
pub async fn reject_full(stream: TcpStream) {
    drop(stream);
}
