//! TCP check: the handshake completes (the socket is closed at once).

use std::net::SocketAddr;

use super::error::CheckError;

pub async fn probe(address: SocketAddr) -> Result<(), CheckError> {
    tokio::net::TcpStream::connect(address)
        .await
        .map(drop)
        .map_err(CheckError::connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listening_passes_closed_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        assert_eq!(probe(address).await, Ok(()));
        drop(listener);
        assert_eq!(probe(address).await, Err(CheckError::Refused));
    }
}
