//! `vpcguard::identity::client_ip::resolve_client_ip` over fuzzed `X-Forwarded-For`, `Forwarded`
//! and `X-Real-IP` values (the hop parsers in `client_ip/parse.rs` are private; this is their one
//! public entry).
//!
//! Input: `selector byte, value (0x00 value)*`. Each value becomes one header line; the selector's
//! low bits pick which header each line goes to, and its high bits the order of
//! `client_ip.headers`. A value `HeaderValue` refuses is skipped, as hyper would refuse it.
//!
//! Beyond "no panic":
//! - deterministic;
//! - a peer outside `trusted_proxies` is the client whatever the headers say;
//! - syntax errors (`Malformed*`, `TooManyHops`) do not depend on which hops are trusted: a
//!   chain trusted end to end and one trusted only at the peer agree on them;
//! - when everything is trusted, a resolved address is canonical (IPv4-mapped → IPv4) and, written
//!   back as a one-hop header of the same kind, resolves to itself.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vpcguard::identity::client_ip::{
    ClientIpConfig, ClientIpSource, ForwardHeader, ForwardedError, NetList, resolve_client_ip,
};

const ALL: [ForwardHeader; 3] = [
    ForwardHeader::XForwardedFor,
    ForwardHeader::Forwarded,
    ForwardHeader::XRealIp,
];
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

fn config(trusted: &str, headers: Vec<ForwardHeader>) -> ClientIpConfig {
    ClientIpConfig {
        trusted_proxies: trusted.parse::<NetList>().expect("static net list"),
        headers,
    }
}

fn is_syntax_error(e: &ForwardedError) -> bool {
    !matches!(e, ForwardedError::UnidentifiableClient)
}

/// The header kind an address came from, by its recorded source.
fn header_of(source: ClientIpSource) -> Option<ForwardHeader> {
    match source {
        ClientIpSource::XForwardedFor => Some(ForwardHeader::XForwardedFor),
        ClientIpSource::Forwarded => Some(ForwardHeader::Forwarded),
        ClientIpSource::XRealIp => Some(ForwardHeader::XRealIp),
        ClientIpSource::Socket | ClientIpSource::ProxyProtocol => None,
    }
}

/// A one-hop header naming `addr`, in `header`'s syntax.
fn one_hop(header: ForwardHeader, addr: IpAddr) -> String {
    match (header, addr) {
        (ForwardHeader::Forwarded, IpAddr::V6(v6)) => format!("for=\"[{v6}]\""),
        (ForwardHeader::Forwarded, IpAddr::V4(v4)) => format!("for={v4}"),
        (_, a) => a.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (i, value) in rest.split(|&b| b == 0).enumerate() {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        // Lines go to the header named by two selector bits, rotating per line.
        let which = (usize::from(sel & 3) + i) % 3;
        headers.append(ALL[which].name(), value);
    }
    // The order the config lists the headers in.
    let mut order = ALL.to_vec();
    order.rotate_left(usize::from(sel >> 2) % 3);
    if sel & 0x20 != 0 {
        order.truncate(1);
    }

    let all = config("0.0.0.0/0, ::/0", order.clone());
    let peer_only = config("10.0.0.1", order.clone());
    let nobody = config("", order.clone());

    let a = resolve_client_ip(&all, PEER, ClientIpSource::Socket, &headers);
    assert_eq!(
        a,
        resolve_client_ip(&all, PEER, ClientIpSource::Socket, &headers)
    );

    // An untrusted peer is the client; its headers are never read.
    let n = resolve_client_ip(&nobody, PEER, ClientIpSource::ProxyProtocol, &headers);
    let n = n.expect("untrusted peer cannot fail");
    assert_eq!((n.addr, n.source), (PEER, ClientIpSource::ProxyProtocol));

    // Syntax errors are independent of how far the walk goes.
    let p = resolve_client_ip(&peer_only, PEER, ClientIpSource::Socket, &headers);
    match (&a, &p) {
        (Err(x), r) if is_syntax_error(x) => assert_eq!(*r, Err(*x), "trust-all {x:?}"),
        (r, Err(y)) if is_syntax_error(y) => assert_eq!(*r, Err(*y), "peer-only {y:?}"),
        _ => {}
    }

    if let Ok(ip) = a {
        assert_eq!(ip.addr, ip.addr.to_canonical(), "not canonical: {ip:?}");
        if let Some(h) = header_of(ip.source) {
            assert!(order.contains(&h));
            let mut again = HeaderMap::new();
            let value = one_hop(h, ip.addr);
            again.insert(h.name(), HeaderValue::from_str(&value).expect("ascii"));
            let cfg = config("0.0.0.0/0, ::/0", vec![h]);
            let back = resolve_client_ip(&cfg, PEER, ClientIpSource::Socket, &again);
            assert_eq!(back.map(|c| c.addr), Ok(ip.addr), "{value:?}");
        } else {
            // No header yielded: the peer.
            assert_eq!((ip.addr, ip.source), (PEER, ClientIpSource::Socket));
        }
    }
});
