//! A hub's two addresses: the WebSocket the SDK connects to and the HTTP base
//! of its API. One rule for both directions: unencrypted (`ws://`, `http://`)
//! only to this machine, since a client's token travels in every request.

use crate::HubError;

use heiwa_config::is_loopback_url;

fn parse(address: &str) -> Result<url::Url, HubError> {
    let bad = |why| HubError::BadAddress { url: address.into(), why };
    url::Url::parse(address).map_err(|e| match e {
        url::ParseError::EmptyHost => bad("has no host"),
        _ => bad("is not a URL"),
    })
}

/// Switch `address` from `from`'s schemes (secure, plain) to `to`'s.
fn convert(address: &str, from: [&str; 2], to: [&str; 2], kind: &'static str) -> Result<String, HubError> {
    let bad = |why| HubError::BadAddress { url: address.into(), why };
    let mut url = parse(address)?;
    let scheme = match url.scheme() {
        s if s == from[0] => to[0],
        s if s == from[1] && is_loopback_url(&url) => to[1],
        s if s == from[1] => return Err(bad("would send this client's token unencrypted")),
        _ => return Err(bad(kind)),
    };
    url.set_scheme(scheme).map_err(|()| bad("is not a URL"))?;
    Ok(url.origin().ascii_serialization())
}

/// The hub's HTTP base for its WebSocket URL.
pub fn http_url(ws: &str) -> Result<String, HubError> {
    convert(ws, ["wss", "ws"], ["https", "http"], "is not a WebSocket URL")
}

/// The hub's WebSocket URL for its HTTP base.
pub fn ws_url(http: &str) -> Result<String, HubError> {
    convert(http, ["https", "http"], ["wss", "ws"], "is not an HTTP URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hubs_http_base_follows_its_websocket_url_and_plain_ws_stays_on_this_machine() {
        assert_eq!(http_url("wss://hub.example.org").unwrap(), "https://hub.example.org");
        assert_eq!(http_url("wss://hub.example.org:8443/").unwrap(), "https://hub.example.org:8443");
        assert_eq!(http_url("ws://127.0.0.1:3000").unwrap(), "http://127.0.0.1:3000");
        assert_eq!(http_url("ws://[::1]:3000").unwrap(), "http://[::1]:3000");
        assert_eq!(http_url("ws://localhost:3000").unwrap(), "http://localhost:3000");
        assert!(http_url("ws://hub.example.org:3000").unwrap_err().to_string().contains("unencrypted"));
        assert!(http_url("https://hub.example.org").unwrap_err().to_string().contains("not a WebSocket URL"));
        assert!(http_url("hub.example.org").unwrap_err().to_string().contains("not a URL"));
        assert!(http_url("wss://").unwrap_err().to_string().contains("no host"));
    }

    #[test]
    fn the_websocket_url_follows_the_http_base_under_the_same_rule() {
        assert_eq!(ws_url("https://hub.example.org:8443/").unwrap(), "wss://hub.example.org:8443");
        assert_eq!(ws_url("http://127.0.0.1:3000").unwrap(), "ws://127.0.0.1:3000");
        assert!(ws_url("http://hub.example.org").unwrap_err().to_string().contains("unencrypted"));
        assert!(ws_url("wss://hub.example.org").unwrap_err().to_string().contains("not an HTTP URL"));
    }
}

/// Where `heiwa dashboard` serves the web dashboard unless told otherwise.
pub const DEFAULT_DASHBOARD: &str = "http://127.0.0.1:8788";

/// A sign-in link for the web dashboard at `dashboard`: the hub, the database
/// and the one-use code go after `#`, which a browser never sends to the
/// server that serves the page.
pub fn dashboard_link(dashboard: &str, hub_ws: &str, database: &str, code: &str) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!("{}/#hub={}&db={}&code={}", dashboard.trim_end_matches('/'), encode(hub_ws), encode(database), encode(code))
}

#[cfg(test)]
mod dashboard_tests {
    #[test]
    fn a_dashboard_link_carries_the_hub_and_code_after_the_hash() {
        let link = super::dashboard_link("http://127.0.0.1:8788/", "ws://127.0.0.1:3000", "my db", "00ff");
        assert_eq!(link, "http://127.0.0.1:8788/#hub=ws%3A%2F%2F127.0.0.1%3A3000&db=my%20db&code=00ff");
    }
}
