//! Webhooks (reqwest): one client per endpoint in `touchline.yaml`, every request signed per
//! Standard Webhooks 1.0, redirects never followed, and requests to loopback, private,
//! link-local and cloud metadata addresses refused unless the endpoint allows them.
//!
//! The private-address check runs on the *resolved* address inside the client's resolver,
//! so a name that resolves to `127.0.0.1` (or changes its answer between a check and the
//! connection) cannot slip through.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;

use super::Attempt;
use crate::definitions::config::WebhookEndpoint;

/// Timeout when an endpoint sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest `Retry-After` honoured; longer waits fall back to the usual backoff.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// True for addresses a webhook may not reach unless its endpoint allows private targets:
/// loopback, private ranges, link-local (incl. the cloud metadata address 169.254.169.254),
/// shared carrier-grade NAT space, unique-local IPv6, unspecified and broadcast.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A resolver that drops private addresses; a name with nothing else is refused.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            // `localhost` and its subdomains are loopback by definition (RFC 6761), with or
            // without the root's trailing dot, whatever the local resolver answers.
            let bare = host.trim_end_matches('.').to_ascii_lowercase();
            if bare == "localhost" || bare.ends_with(".localhost") {
                return Err(Box::new(Refused(format!(
                    "{host} names this machine (a private address); set `allow_private: true` on the endpoint to allow it"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_private(a.ip()))
                .collect();
            if public.is_empty() {
                let shown = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(Box::new(Refused(format!(
                    "{host} resolves to the private address {shown}; set `allow_private: true` on the endpoint to allow it"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// A request refused before it was sent.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// One configured endpoint, ready to call.
struct Endpoint {
    url: String,
    /// The URL parsed once, not on every call (unset if it does not parse: each call then
    /// fails with reqwest's reason).
    parsed: Option<reqwest::Url>,
    client: reqwest::Client,
    allow_private: bool,
    /// Signing keys (decoded `whsec_` secrets), or why they could not be read.
    keys: Result<Vec<Vec<u8>>, String>,
    /// Extra headers from the environment, or why they could not be read.
    headers: Result<reqwest::header::HeaderMap, String>,
}

/// Every webhook endpoint of the project.
#[derive(Clone)]
pub struct WebhookChannel {
    endpoints: Arc<BTreeMap<String, Result<Endpoint, String>>>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where secrets come from: the process environment, or (embedding, tests) a lookup.
pub type Environment<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the signing secrets named by `secret_env`: each `whsec_` + base64 key.
fn signing_keys(names: &[String], env: Environment<'_>) -> Result<Vec<Vec<u8>>, String> {
    names
        .iter()
        .map(|name| {
            let value = env(name).ok_or_else(|| format!("set {name} to the signing secret"))?;
            let encoded = value.strip_prefix("whsec_").unwrap_or(&value);
            BASE64
                .decode(encoded.trim())
                .map_err(|e| format!("{name} is not a `whsec_` + base64 secret: {e}"))
        })
        .collect()
}

/// The headers `headers_env` names, each value read from its environment variable.
fn extra_headers(
    names: &BTreeMap<String, String>,
    env: Environment<'_>,
) -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (header, var) in names {
        let value = env(var).ok_or_else(|| format!("set {var} to the value of header {header}"))?;
        let name = reqwest::header::HeaderName::from_bytes(header.as_bytes())
            .map_err(|e| format!("`{header}` is not a header name: {e}"))?;
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|e| format!("{var} is not a valid header value: {e}"))?;
        // Kept out of debug output and logs.
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

fn endpoint(settings: &WebhookEndpoint, env: Environment<'_>) -> Result<Endpoint, String> {
    let timeout = settings
        .timeout
        .as_ref()
        .map_or(DEFAULT_TIMEOUT, |t| t.value.0);
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("touchline/", env!("CARGO_PKG_VERSION")));
    if !settings.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    Ok(Endpoint {
        url: settings.url.clone(),
        parsed: reqwest::Url::parse(&settings.url).ok(),
        client,
        allow_private: settings.allow_private,
        keys: signing_keys(&settings.secret_env, env),
        headers: extra_headers(&settings.headers_env, env),
    })
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of id.timestamp.body>` per key,
/// space-separated (receivers accept any one during a rotation).
pub fn signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| {
            // HMAC takes keys of any length, so this cannot fail.
            let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC accepts any key");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let wait = match value.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            // An HTTP date is the receiver's wall clock; compare it with ours.
            let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    (wait <= MAX_RETRY_AFTER).then_some(wait)
}

/// Why a request failed, as the delivery record keeps it (the innermost cause included).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn refused_by_resolver(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<Refused>() {
            return true;
        }
        source = cause.source();
    }
    false
}

impl WebhookChannel {
    /// Clients for every endpoint in `touchline.yaml`, with secrets from `env`.
    pub fn new(endpoints: &BTreeMap<String, WebhookEndpoint>, env: Environment<'_>) -> Self {
        let endpoints = endpoints
            .iter()
            .map(|(name, settings)| (name.clone(), endpoint(settings, env)))
            .collect();
        Self {
            endpoints: Arc::new(endpoints),
        }
    }

    /// The URL of a named endpoint.
    pub fn url(&self, name: &str) -> Option<&str> {
        match self.endpoints.get(name) {
            Some(Ok(endpoint)) => Some(&endpoint.url),
            _ => None,
        }
    }

    /// POSTs `body` to the named endpoint with `id` as `webhook-id` (the same on every
    /// retry, so receivers can drop repeats).
    pub async fn send(&self, name: &str, id: &str, body: &serde_json::Value) -> Attempt {
        let endpoint = match self.endpoints.get(name) {
            None => return Attempt::Permanent(format!("no webhook endpoint `{name}`")),
            Some(Err(problem)) => {
                return Attempt::Temporary(format!("endpoint `{name}`: {problem}"), None);
            }
            Some(Ok(endpoint)) => endpoint,
        };
        let keys = match &endpoint.keys {
            Ok(keys) => keys,
            Err(problem) => {
                return Attempt::Temporary(format!("endpoint `{name}`: {problem}"), None);
            }
        };
        let extra = match &endpoint.headers {
            Ok(headers) => headers.clone(),
            Err(problem) => {
                return Attempt::Temporary(format!("endpoint `{name}`: {problem}"), None);
            }
        };
        if let Some(refusal) = self.literal_refusal(endpoint) {
            return Attempt::Permanent(refusal);
        }
        let body = serde_json::to_vec(body).unwrap_or_default();
        // The wall clock, not the pass's: receivers reject a signature whose timestamp is
        // far from their own clock (replay protection), whatever time touchline simulates.
        let timestamp = chrono::Utc::now().timestamp();
        let request = match &endpoint.parsed {
            Some(url) => endpoint.client.post(url.clone()),
            None => endpoint.client.post(&endpoint.url),
        };
        let mut request = request
            .headers(extra)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if !keys.is_empty() {
            request = request.header("webhook-signature", signature(keys, id, timestamp, &body));
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) if refused_by_resolver(&error) => {
                return Attempt::Permanent(describe(&error));
            }
            Err(error) => return Attempt::Temporary(describe(&error), None),
        };
        classify(response).await
    }

    /// A URL whose host is a private IP literal is refused without a lookup.
    fn literal_refusal(&self, endpoint: &Endpoint) -> Option<String> {
        if endpoint.allow_private {
            return None;
        }
        let ip = match endpoint.parsed.as_ref()?.host()? {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        is_private(ip).then(|| {
            format!(
                "{} is a private address; set `allow_private: true` on the endpoint to allow it",
                ip
            )
        })
    }
}

/// 2xx is delivered; 410 disables the endpoint; 408, 429 and 5xx are retried (after
/// `Retry-After` if given); redirects and other 4xx fail at once.
async fn classify(response: reqwest::Response) -> Attempt {
    let status = response.status();
    if status.is_success() {
        // Read to its end, so the connection is reused, but not decoded: nothing keeps it.
        let _ = response.bytes().await;
        return Attempt::Sent(format!("HTTP {status}"));
    }
    let wait = retry_after(&response);
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.unwrap_or_default();
    let snippet: String = text.chars().take(200).collect();
    let said = if snippet.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", snippet.trim())
    };
    match status.as_u16() {
        410 => Attempt::EndpointGone(said),
        408 | 429 | 500..=599 => Attempt::Temporary(said, wait),
        300..=399 => Attempt::Permanent(format!(
            "{said} (redirect to {} not followed)",
            location.as_deref().unwrap_or("nowhere")
        )),
        _ => Attempt::Permanent(said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let key = BASE64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let body = br#"{"test": 2432232314}"#;
        let header = signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
