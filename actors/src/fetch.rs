//! Fetching a run's input from an `http(s)` URL, safely: bounded in size and time, no
//! redirects, and never to an address that is not public (loopback, private, link-local —
//! the cloud metadata service —, …) unless its range is allowlisted (SSRF). The host is
//! resolved once, every address it resolves to is checked, and the connection goes to a
//! checked address, so DNS cannot answer differently between the check and the request.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use aurora_domain::media::InputFormat;
use aurora_domain::net::{non_public, IpRanges};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::artifacts::ArtifactStore;
use crate::tools::ToolError;

/// Limits of URL inputs.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Largest input fetched, in bytes.
    pub max_bytes: u64,
    /// Longest a fetch may take.
    pub timeout: Duration,
    /// Non-public ranges that may be fetched from all the same.
    pub allow: IpRanges,
}

/// Checks `url`'s host and returns the address to connect to.
pub async fn resolve(url: &reqwest::Url, allow: &IpRanges) -> Result<SocketAddr, ToolError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolError::Invalid(
            "only http and https URLs are fetched".into(),
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| ToolError::Invalid("the input URL has no host".into()))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| ToolError::Invalid(format!("the input host {host} does not resolve")))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(ToolError::Invalid(format!(
            "the input host {host} does not resolve"
        )));
    }
    for address in &addresses {
        if let Some(kind) = non_public(address.ip()) {
            if !allow.contains(address.ip()) {
                // Which address, and of which private range, is not said: an error must not
                // map the server's network for whoever asks.
                tracing::info!(%host, ip = %address.ip(), kind, "a non-public input address refused");
                return Err(ToolError::Invalid(format!(
                    "the input host {host} resolves to an address that is not public, which is not fetched"
                )));
            }
        }
    }
    Ok(addresses[0])
}

/// Fetches a run's input once (a retry finds the complete file and reuses it), with the
/// format its first bytes name: it is read with that format's demuxer and no other.
pub async fn fetch_input(
    settings: &FetchSettings,
    artifacts: &ArtifactStore,
    run_id: Uuid,
    url: &str,
    cancel: &CancellationToken,
) -> Result<(PathBuf, InputFormat), ToolError> {
    let path = artifacts.run_input(run_id);
    if tokio::fs::metadata(&path).await.is_err() {
        fetch(settings, &path, url, cancel).await?;
    }
    match crate::artifacts::sniff_file(&path).await {
        Ok(Some(format)) => Ok((path, format)),
        Ok(None) => Err(not_media()),
        Err(e) => Err(ToolError::Failed(format!("cannot read the input: {e}"))),
    }
}

fn not_media() -> ToolError {
    ToolError::Invalid(format!(
        "the input URL did not return an admitted audio or video format ({})",
        InputFormat::names()
    ))
}

async fn fetch(
    settings: &FetchSettings,
    path: &std::path::Path,
    url: &str,
    cancel: &CancellationToken,
) -> Result<(), ToolError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot create the run's directory: {e}")))?;
    }
    let part = ArtifactStore::part(path);
    download(settings, &part, url, cancel, None).await?;
    ArtifactStore::commit(&part, path)
        .await
        .map_err(|e| ToolError::Failed(format!("cannot store the input: {e}")))
}

/// Downloads `url` to `part` under the fetcher's guards, and returns the format its first
/// bytes name; `hosts`: the only host names it may be on (a provider's file hosts). On
/// failure nothing is left at `part`.
pub(crate) async fn download(
    settings: &FetchSettings,
    part: &std::path::Path,
    url: &str,
    cancel: &CancellationToken,
    hosts: Option<&crate::generate::HostPatterns>,
) -> Result<InputFormat, ToolError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ToolError::Invalid(format!("bad input URL: {e}")))?;
    if let Some(hosts) = hosts {
        let host = parsed.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !hosts.allows(bare) {
            return Err(ToolError::Invalid(format!(
                "the video is on {host}, which is not one of the provider's hosts"
            )));
        }
        // A provider's files come over TLS; plain http only from an allowlisted address
        // (a stand-in in tests).
        let allowed_plain = bare
            .parse::<IpAddr>()
            .is_ok_and(|ip| settings.allow.contains(ip));
        if parsed.scheme() != "https" && !allowed_plain {
            return Err(ToolError::Invalid(format!(
                "the video is offered over {}, not https",
                parsed.scheme()
            )));
        }
    }
    let address = resolve(&parsed, &settings.allow).await?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the name again, past the checks above.
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(Duration::from_secs(10))
        .resolve(&host, address)
        .build()
        .map_err(|e| ToolError::Failed(format!("http client: {e}")))?;
    let download = async {
        let mut response = client.get(parsed.clone()).send().await.map_err(|e| {
            if e.is_timeout() || e.is_connect() {
                ToolError::Failed(format!("cannot fetch the input: {e}"))
            } else {
                ToolError::Invalid(format!("cannot fetch the input: {e}"))
            }
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(ToolError::Invalid(format!(
                "the input URL answered {status}; redirects are not followed"
            )));
        }
        if status.is_server_error() {
            return Err(ToolError::Failed(format!(
                "the input URL answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(ToolError::Invalid(format!(
                "the input URL answered {status}"
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n > settings.max_bytes)
        {
            return Err(ToolError::Invalid(format!(
                "the input is larger than {} bytes",
                settings.max_bytes
            )));
        }
        let mut file = tokio::fs::File::create(part)
            .await
            .map_err(|e| ToolError::Failed(format!("cannot write the input: {e}")))?;
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ToolError::Failed(format!("fetching the input: {e}")))?
        {
            written += chunk.len() as u64;
            if written > settings.max_bytes {
                return Err(ToolError::Invalid(format!(
                    "the input is larger than {} bytes",
                    settings.max_bytes
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| ToolError::Failed(format!("cannot write the input: {e}")))?;
        }
        file.sync_all()
            .await
            .map_err(|e| ToolError::Failed(format!("cannot write the input: {e}")))?;
        if written == 0 {
            return Err(ToolError::Invalid("the input URL returned no bytes".into()));
        }
        // Judged by its content, like an upload: a playlist or a page is not media.
        match crate::artifacts::sniff_file(part).await {
            Ok(Some(format)) => Ok(format),
            Ok(None) => Err(not_media()),
            Err(e) => Err(ToolError::Failed(format!("cannot read the input: {e}"))),
        }
    };
    let outcome = tokio::select! {
        () = cancel.cancelled() => Err(ToolError::Cancelled),
        outcome = download => outcome,
    };
    if outcome.is_err() {
        let _ = tokio::fs::remove_file(part).await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_and_metadata_addresses_are_refused_unless_allowlisted() {
        let none = IpRanges::default();
        for url in [
            "http://127.0.0.1/a.mp4",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/a.mp4",
            "http://10.0.0.5/a.mp4",
            "http://localhost/a.mp4",
        ] {
            let url = reqwest::Url::parse(url).unwrap();
            let refused = resolve(&url, &none).await;
            assert!(
                matches!(refused, Err(ToolError::Invalid(_))),
                "{url}: {refused:?}"
            );
        }
        let loopback = IpRanges::parse("127.0.0.0/8").unwrap();
        let url = reqwest::Url::parse("http://127.0.0.1:9/a.mp4").unwrap();
        assert_eq!(
            resolve(&url, &loopback).await.unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
    }
}
