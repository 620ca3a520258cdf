//! `NodeUrl`: the HTTP base URL of a node, as given to `--node`, `--primary`
//! and `--standby`. Checked once when parsed, so that a typo is reported
//! before any request is sent.

use std::fmt;
use std::str::FromStr;

/// A node's HTTP base URL: `http://host[:port]`, with no path, query or
/// trailing slash. Only plain HTTP: this build has no TLS client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUrl(String);

/// Why a text is not a node URL; each message says how to write it instead.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeUrlError {
    #[error("{0:?} has no scheme: write it as http://{0}")]
    NoScheme(String),
    #[error("{0:?}: https is not supported by this build; reach the node over http:// (e.g. through a tunnel or on its private network)")]
    Https(String),
    #[error("{0:?}: only http:// URLs are supported")]
    OtherScheme(String),
    #[error("{0:?} has no host: write it as http://host:port")]
    NoHost(String),
    #[error(
        "{0:?}: give the node's base URL only, http://host:port, without a path, query or user"
    )]
    NotABaseUrl(String),
}

impl NodeUrl {
    /// The URL of `path` on this node; `path` starts with `/`.
    pub fn join(&self, path: &str) -> String {
        debug_assert!(path.starts_with('/'), "{path}");
        format!("{}{path}", self.0)
    }
}

impl FromStr for NodeUrl {
    type Err = NodeUrlError;

    fn from_str(text: &str) -> Result<NodeUrl, NodeUrlError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("http://") else {
            return Err(if text.starts_with("https://") {
                NodeUrlError::Https(text.to_owned())
            } else if text.contains("://") {
                NodeUrlError::OtherScheme(text.to_owned())
            } else {
                NodeUrlError::NoScheme(text.to_owned())
            });
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.starts_with(':') {
            return Err(NodeUrlError::NoHost(text.to_owned()));
        }
        if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
            return Err(NodeUrlError::NotABaseUrl(text.to_owned()));
        }
        Ok(NodeUrl(format!("http://{authority}")))
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_is_kept_without_its_trailing_slash() {
        let url: NodeUrl = "http://127.0.0.1:8080/".parse().unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:8080");
        assert_eq!(url.join("/v1/cluster"), "http://127.0.0.1:8080/v1/cluster");
        let url: NodeUrl = " http://node-b.internal:8080 ".parse().unwrap();
        assert_eq!(url.to_string(), "http://node-b.internal:8080");
        let url: NodeUrl = "http://[::1]:8080".parse().unwrap();
        assert_eq!(url.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn mistakes_are_named_with_the_way_to_write_it() {
        let error = "10.0.0.2:8080".parse::<NodeUrl>().unwrap_err();
        assert_eq!(error, NodeUrlError::NoScheme("10.0.0.2:8080".into()));
        assert!(
            error.to_string().contains("http://10.0.0.2:8080"),
            "{error}"
        );

        assert!(matches!(
            "https://10.0.0.2:8443".parse::<NodeUrl>(),
            Err(NodeUrlError::Https(_))
        ));
        assert!(matches!(
            "quic://10.0.0.2:4433".parse::<NodeUrl>(),
            Err(NodeUrlError::OtherScheme(_))
        ));
        for no_host in ["http://", "http:///", "http://:8080"] {
            assert!(
                matches!(no_host.parse::<NodeUrl>(), Err(NodeUrlError::NoHost(_))),
                "{no_host}"
            );
        }
        for not_base in [
            "http://10.0.0.2:8080/v1/cluster",
            "http://10.0.0.2:8080?x=1",
            "http://admin@10.0.0.2:8080",
            "http://10.0.0.2 :8080",
        ] {
            assert!(
                matches!(
                    not_base.parse::<NodeUrl>(),
                    Err(NodeUrlError::NotABaseUrl(_))
                ),
                "{not_base}"
            );
        }
    }
}
