//! Bounds on the data path (docs/contract.md §2, §6): the response deadline counted from the end
//! of the request body, the listen backlog, HTTP/2 stream and buffer limits, tunnels as
//! connections, and the stream idle timeout. Real sockets on 127.0.0.1:0, short real timeouts
//! under a bounding `within`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::upstream::Upstream;
use common::{OPEN_POLICY, STATIC_TENANT, TestProxy, config_plain, within};

fn echo(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

/// A body that sends `chunks` chunks of `size` bytes, `gap` apart: a slow but steady upload
/// (the gaps are the stimulus, not synchronisation).
fn slow_body(chunks: u32, size: usize, gap: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0u32, move |i| async move {
        if i == chunks {
            return None;
        }
        if i > 0 {
            #[allow(clippy::disallowed_methods)] // the upload's pace is the stimulus
            tokio::time::sleep(gap).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; size])),
            i + 1,
        ))
    });
    reqwest::Body::wrap_stream(stream)
}

/// The proxy in front of `up` (plain HTTP, every request in the static tenant), with `upstream`
/// lines added under `upstream:` and `extra` top-level YAML.
async fn proxy(up: std::net::SocketAddr, upstream: &str, extra: &str) -> TestProxy {
    let config = config_plain(up, &format!("{STATIC_TENANT}{extra}")).replacen(
        "upstream:\n",
        &format!("upstream:\n{upstream}"),
        1,
    );
    TestProxy::start(&config, OPEN_POLICY, false).await
}

#[tokio::test]
async fn response_timeout_slow_upload_to_fast_upstream_is_200() {
    let up = Upstream::start().await;
    let proxy = proxy(up.addr, "  response_timeout: 1s\n", "").await;
    for http2 in [false, true] {
        // 9 chunks 250 ms apart: the body takes 2 s, twice the response timeout.
        let r = within(
            20,
            proxy
                .client(http2)
                .post(format!("{}/upload", proxy.base()))
                .body(slow_body(9, 1024, Duration::from_millis(250)))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "client http2={http2}");
        assert_eq!(echo(&r.text().await.unwrap())["body_bytes"], 9 * 1024);
    }
}
