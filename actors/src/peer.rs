//! `PeerAddress`: where a node of the cluster is reached, as told to peers and
//! carried in `not_primary` answers.

/// Where a node is reached. Carried in `not_primary` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAddress {
    /// The HTTP base URL, e.g. `http://127.0.0.1:8080`.
    pub http: String,
    /// The QUIC front end's `host:port`, when it runs.
    pub quic: Option<String>,
    /// The replication listener's `host:port`, when it runs.
    pub replication: Option<String>,
}

impl PeerAddress {
    /// The address as one meta value: its three parts on three lines.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}",
            self.http,
            self.quic.as_deref().unwrap_or(""),
            self.replication.as_deref().unwrap_or("")
        )
        .into_bytes()
    }

    /// The inverse of `encode`; missing parts are empty.
    pub(crate) fn decode(bytes: &[u8]) -> PeerAddress {
        let text = String::from_utf8_lossy(bytes);
        let mut parts = text.split('\n').map(str::to_owned);
        let mut next = || parts.next().filter(|part| !part.is_empty());
        PeerAddress {
            http: next().unwrap_or_default(),
            quic: next(),
            replication: next(),
        }
    }
}
